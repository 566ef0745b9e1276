"""The coverage-guided fuzz target (tests/fuzz/atheris_stream.py) run for a bounded time:
``XMPPD_ATHERIS_SECONDS`` (30 by default; 0 skips, saying so). atheris is in the test extra;
without it this test fails and says how to install it, it does not skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).with_name("atheris_stream.py")
DICTIONARY = Path(__file__).with_name("xmpp.dict")


def test_the_coverage_guided_fuzzer_finds_no_crash(tmp_path):
    seconds = int(os.environ.get("XMPPD_ATHERIS_SECONDS", "30"))
    if seconds == 0:
        pytest.skip("XMPPD_ATHERIS_SECONDS=0: the atheris run was switched off")
    try:
        import atheris  # noqa: F401
    except ImportError:
        pytest.fail("atheris is not installed: `.venv/bin/pip install atheris` (it is in the "
                    "test extra of setup.cfg; wheels exist for CPython 3.11 on x86-64 Linux)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run(
        [sys.executable, str(TARGET), f"-max_total_time={seconds}", "-rss_limit_mb=1536",
         f"-dict={DICTIONARY}",
         "-timeout=10", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1", str(corpus)],
        capture_output=True, text=True, timeout=seconds + 120,
        cwd=Path(__file__).parents[2])
    report = run.stdout[-4000:] + run.stderr[-6000:]
    assert run.returncode == 0, report
    assert "Done" in run.stderr, report  # libFuzzer's end-of-run line: it really ran
    executions = [line for line in run.stderr.splitlines() if "stat::number_of_executed_units"
                  in line]
    assert executions and int(executions[0].split(":")[-1]) > 1000, report
    assert not list(tmp_path.glob("crash-*")), report
