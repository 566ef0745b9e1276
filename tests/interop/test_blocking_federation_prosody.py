"""Blocking (XEP-0191) across federation with a real Prosody 0.12 (the scenario is in
tests/interop/blocking_scenarios.py): alice on xmppd blocks her contact bob on Prosody, who
gets her unavailable presence, then nothing of hers (her presence changes included: they
went through federation before xmppd's 'remote' chain target), and bounces; unblocked, they
see each other again. The servers (twice: certificates and dialback) are those of
tests/interop/test_muc_federation_prosody.py.
"""

from __future__ import annotations

import pytest

from tests.interop.blocking_scenarios import a_blocked_remote_contact
from tests.interop.muc_scenarios import peer_client
from tests.interop.prosody import SKIP_REASON, available, login
from tests.interop.test_muc_federation_prosody import servers  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not available(), reason=SKIP_REASON)]


def test_a_blocked_remote_contact(servers):  # noqa: F811
    xmppd, prosody = servers
    a_blocked_remote_contact(xmppd, lambda user: peer_client(login, prosody, user))
    assert prosody.errors() == []
