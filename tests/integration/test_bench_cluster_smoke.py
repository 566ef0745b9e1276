"""Keep ``make bench-cluster`` from rotting: its quick mode with one and two nodes has to
finish, with no problem in the nodes' logs and sane numbers. Not a performance test:
nothing is compared with a threshold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.cluster import placement

ROOT = Path(__file__).resolve().parents[2]


def test_placement_puts_pairs_on_one_node_or_across_two():
    assert placement(3, 2, cross=False) == [0, 0, 1, 1, 0, 0]
    assert placement(3, 2, cross=True) == [0, 1, 1, 0, 0, 1]
    assert placement(2, 1, cross=True) == [0, 0, 0, 0]


def test_quick_cluster_bench_produces_sane_numbers(tmp_path):
    output = tmp_path / "cluster.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.cluster", "--quick", "--nodes", "1,2", "--no-pin",
         "--output", str(output)],
        cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(output.read_text())
    assert report["quick"] is True and report["problems"] == []
    one, two = report["results"]["1"], report["results"]["2"]
    for metrics in (one, two):
        assert min(metrics["logins_per_s"]) > 0 and max(metrics["errors"]) == 0
        assert min(metrics["same_msgs_per_s"]) > 0 and min(metrics["nodes_ms_per_login"]) > 0
    assert "cross_msgs_per_s" not in one
    assert min(two["cross_msgs_per_s"]) > 0 and min(two["cross_nodes_us_per_msg"]) > 0
    assert "| 2 |" in result.stdout
