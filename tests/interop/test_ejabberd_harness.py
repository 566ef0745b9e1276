"""The ejabberd harness works: a real ejabberd runs from a working directory of its own, as
the ejabberd user, on its own node and distribution port, serves a client, stops cleanly, leaves
its logs with the test and nothing behind; and when it cannot start, the test fails with its log.

These skip (with the reason) only where ejabberd is not installed.
"""

from __future__ import annotations

import asyncio
import os
import pwd

import pytest

from tests.certs import make_test_pki
from tests.interop.ejabberd import (
    SKIP_REASON,
    USER,
    EjabberdError,
    EjabberdProcess,
    available,
    login,
)

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not available(), reason=SKIP_REASON)]

DOMAIN = "ejabberd.example"


def test_ejabberd_serves_a_client_and_stops_cleanly(tmp_path):
    pki = make_test_pki(tmp_path / "pki", [DOMAIN], with_other_names=False)
    home = pwd.getpwnam(USER).pw_dir
    home_before = sorted(os.listdir(home)) if os.path.isdir(home) else None
    server = EjabberdProcess(tmp_path / "ejabberd", DOMAIN,
                             certificate=(pki.good[DOMAIN].cert_path,
                                          pki.good[DOMAIN].key_path),
                             ca_file=pki.ca.ca_path)
    try:
        assert os.stat(server.work).st_uid == pwd.getpwnam(USER).pw_uid
        server.start()
        server.register("bob")

        async def log_in_and_out() -> str:
            client = await login(server, "bob", resource="desk")
            jid = str(client.boundjid)
            client.disconnect()
            await asyncio.wait_for(client.disconnected, 10)
            return jid

        assert asyncio.run(log_in_and_out()) == f"bob@{DOMAIN}/desk"
        server.wait_for_log(r"Accepted c2s SCRAM-SHA-\d+ authentication for "
                            r"bob@ejabberd\.example")
        assert server.stop() == 0
        assert server.errors() == []
    finally:
        server.stop()
        server.cleanup()
    assert not server.work.exists()
    assert (tmp_path / "ejabberd" / "ejabberd.log").exists()  # kept with the test
    assert "is stopped in the node" in server.log()
    # a cookie on the command line: nothing written into the ejabberd user's home
    assert (sorted(os.listdir(home)) if os.path.isdir(home) else None) == home_before


def test_ejabberd_that_cannot_start_fails_with_its_log(tmp_path):
    server = EjabberdProcess(tmp_path / "ejabberd", DOMAIN, modules=["mod_no_such_module"])
    try:
        with pytest.raises(EjabberdError, match="mod_no_such_module") as raised:
            server.start(timeout=30)
        assert "ejabberd" in str(raised.value)
    finally:
        server.stop()
        server.cleanup()
