"""Hypothesis settings for the fuzz suite: bounded, so the whole suite stays under a minute
on the CI machine (2 cores). ``XMPPD_FUZZ_EXAMPLES`` raises the count for a longer hunt."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "xmppd-fuzz",
    max_examples=int(os.environ.get("XMPPD_FUZZ_EXAMPLES", "150")),
    deadline=None,  # a shared machine: timing is noise, not a finding
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("XMPPD_FUZZ_RANDOM") is None,  # CI: the same cases each run
    print_blob=True,
)
settings.load_profile("xmppd-fuzz")
