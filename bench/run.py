"""``make bench``: every workload against xmppd, Prosody and ejabberd, side by side.

    python -m bench.run [--quick] [--servers xmppd,prosody,ejabberd] [--profile plain,modern]
                        [--workloads ...] [--output FILE]

Each workload runs against a freshly started server (so one workload's leftovers never
flatter or burden the next) that has one core to itself: the server is pinned to the first
usable core and this process (the load generator, and py-spy) to the others. Only one server
runs at a time. The table shows medians of the repetitions with their range; everything,
every repetition included, goes to bench/results/bench-<time>.json. ``BENCH_QUICK=1`` (or
``--quick``) makes everything tiny: a smoke test of the tooling, not a measurement.

``--profile`` picks the server profiles, each measured in full and shown in a table of its own:
"plain" (the IM features all three are configured with) and "modern" (MAM for everyone,
carbons, stream management, CSI, PEP; the clients enable SM, carbons and CSI): see
bench/servers.py. The JSON has each profile's results under ``by_profile``; its top-level
``results`` and ``table`` are the first profile's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import procstats
from bench.attack import under_attack
from bench.ejabberd import EjabberdUnderTest, ensure_ejabberd
from bench.muc import muc_room
from bench.profile import LOADS, profile
from bench.report import comparison, render
from bench.scaling import SCALE, SCALE_QUICK
from bench.scaling import WORKLOADS as SCALING_WORKLOADS
from bench.servers import (
    DOMAIN,
    PROFILES,
    XMPPD_MODERN,
    XMPPD_PLUGINS,
    ProsodyUnderTest,
    XmppdUnderTest,
    ensure_prosody,
)
from bench.stats import summarize
from bench.websocket import WORKLOADS as WEBSOCKET_WORKLOADS
from bench.workloads import FULL, QUICK, WORKLOADS
from xmppd.stream.selfsigned import make_self_signed

RESULTS = Path(__file__).resolve().parent / "results"
SERVERS = {"xmppd": XmppdUnderTest, "prosody": ProsodyUnderTest,
           "ejabberd": EjabberdUnderTest}
PROFILE_SECONDS = {False: 12.0, True: 1.0}  # full run, quick run
# The default workloads: issue 6's four, the MUC room (bench/muc.py), and the login and message
# workloads over WebSocket (bench/websocket.py); opt-in, not in the default list:
# --workloads under_attack (bench/attack.py), and the scaling ones (bench/scaling.py:
# idle_sessions, broadcast), which run on their own with their own plan
DEFAULT_WORKLOADS = {**WORKLOADS, "muc": muc_room, **WEBSOCKET_WORKLOADS}
ALL_WORKLOADS = {**DEFAULT_WORKLOADS, "under_attack": under_attack, **SCALING_WORKLOADS}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and durations (also BENCH_QUICK=1)")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="comma-separated, from: " + ", ".join(SERVERS))
    parser.add_argument("--profile", default="plain",
                        help="the server profiles, comma-separated, from: " + ", ".join(PROFILES)
                             + " (plain,modern measures both)")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                        help="comma-separated, from: " + ", ".join(ALL_WORKLOADS))
    parser.add_argument("--output", type=Path, help="the JSON file (default: bench/results/)")
    parser.add_argument("--no-pin", action="store_true", help="leave CPU placement to the OS")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--xmppd-plugins", default="plain", choices=sorted(XMPPD_PLUGINS),
                        help="xmppd's plugins: 'plain' (the IM set Prosody has too) or 'default' "
                             "(what make run loads: PEP, stream management, ...) or 'archive' "
                             "(plain with MAM)")
    parser.add_argument("--modern-without", default="",
                        help="xmppd's modern profile less these features (server plugin and "
                             "client enable both), comma-separated, from: "
                             + ", ".join(XMPPD_MODERN))
    parser.add_argument("--profiles", default=",".join(LOADS),
                        help="the loads to profile xmppd under, from: " + ", ".join(LOADS))
    args = parser.parse_args(argv)
    args.quick = args.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    args.servers = _choices(parser, args.servers, SERVERS)
    args.profile = _choices(parser, args.profile, PROFILES)
    args.workloads = _choices(parser, args.workloads, ALL_WORKLOADS)
    args.profiles = _choices(parser, args.profiles, LOADS)
    args.modern_without = frozenset(
        _choices(parser, args.modern_without, XMPPD_MODERN) if args.modern_without else ())
    scaling = [name for name in args.workloads if name in SCALING_WORKLOADS]
    if scaling and len(scaling) != len(args.workloads):
        parser.error(f"{', '.join(SCALING_WORKLOADS)} run on their own (a plan of their own: "
                     "bench/scaling.py)")
    return args


def fit_levels(plan, files: int):
    """The scaling plan with its session levels cut to what the open-file limit allows the
    server (one process: one descriptor a session, and some for itself). A container without
    CAP_SYS_RESOURCE cannot raise its hard limit: this one's is 20,000, so 50,000 becomes
    19,000 there, and the run says so."""
    fit = (files - 512) // 1000 * 1000
    levels = tuple(level for level in plan.memory_levels if level <= fit)
    if levels == plan.memory_levels:
        return plan
    levels = (*levels, fit) if fit > (levels or (0,))[-1] else levels
    print(f"the open-file limit ({files:,}) allows about {fit:,} sessions: measuring "
          f"{', '.join(f'{level:,}' for level in levels)} instead of "
          f"{', '.join(f'{level:,}' for level in plan.memory_levels)}", file=sys.stderr)
    return dataclasses.replace(plan, memory_levels=levels)


def plan_for(args: argparse.Namespace):
    """The sizes and durations: the scaling workloads' own plan, else the full or quick one."""
    if any(name in SCALING_WORKLOADS for name in args.workloads):
        return SCALE_QUICK if args.quick else SCALE
    return QUICK if args.quick else FULL


def _choices(parser, text: str, known) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in known]
    if unknown or not chosen:
        parser.error(f"unknown or no choice in {text!r}; known: {', '.join(known)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_for(args)
    sessions = max(plan.users, *plan.memory_levels) + 2
    files = procstats.raise_open_files(2 * sessions + 1024)
    if plan.scaling:
        plan = fit_levels(plan, files)
        sessions = max(plan.users, *plan.memory_levels) + 2
    if files < sessions + 256:
        print(f"the open-file limit ({files}) is too low for {sessions} sessions: raise the hard "
              "limit (ulimit -Hn) and try again", file=sys.stderr)
        return 1
    cores = None if args.no_pin else procstats.plan_cores()
    if cores is not None:
        procstats.pin(0, cores[1])
    if "prosody" in args.servers and not ensure_prosody():
        args.servers.remove("prosody")
    if "ejabberd" in args.servers and not ensure_ejabberd():
        args.servers.remove("ejabberd")
    started = time.monotonic()
    by_profile = {}
    profiles = {}
    with tempfile.TemporaryDirectory(prefix="xmppd-bench-") as tmp:
        for server_profile in args.profile:
            under_test = _prepare(Path(tmp) / server_profile, args.servers, plan,
                                  args.xmppd_plugins, server_profile, args.modern_without)
            results = {server.name: {} for server in under_test}
            for workload in args.workloads:
                for server in under_test:
                    _say(f"{workload} on {server.name} ({server_profile} profile)")
                    results[server.name][workload] = _measure(server, workload, plan, cores)
            xmppd = next((s for s in under_test if s.name == "xmppd"), None)
            if (xmppd is not None and not args.no_profile and not profiles
                    and not plan.scaling):
                for load in args.profiles:
                    _say(f"profiling xmppd under {load} with py-spy ({server_profile} profile)")
                    profiles[load] = profile(xmppd, plan, load, PROFILE_SECONDS[args.quick],
                                             pin_server=_pinner(cores))
            versions = {server.name: server.version() for server in under_test}
            by_profile[server_profile] = {
                "results": results, "table": comparison(plan, results),
                "problems": {server.name: server.problems for server in under_test}}
    for server_profile, run in by_profile.items():
        print(f"\n{server_profile} profile")
        print(render(run["table"], args.servers))
    for load, summary in profiles.items():
        _print_profile(load, summary)
    for server_profile, run in by_profile.items():
        for warning in _interference(run["results"]):
            print(f"warning: {warning} ({server_profile} profile)")
        for name, seen in run["problems"].items():
            for problem in seen:
                print(f"warning: {name}: {problem} ({server_profile} profile)")
    first = by_profile[args.profile[0]]
    table, results, problems = first["table"], first["results"], first["problems"]
    report = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "xmppd_plugins": args.xmppd_plugins,
        "modern_without": sorted(args.modern_without),
        "server_profiles": args.profile,
        "seconds": round(time.monotonic() - started, 1),
        "machine": _machine(cores),
        "versions": versions,
        "plan": plan.__dict__,
        "table": table,
        "results": results,
        "profiles": profiles,
        "problems": problems,
        "by_profile": by_profile,
    }
    output = args.output or RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwritten to {output} ({report['seconds']:.0f} s)")
    return 0


def _prepare(workdir: Path, names: list[str], plan, xmppd_plugins: str = "plain",
             server_profile: str = "plain", modern_without: frozenset[str] = frozenset()
             ) -> list:
    cert, key = workdir / "tls" / f"{DOMAIN}.crt", workdir / "tls" / f"{DOMAIN}.key"
    make_self_signed(cert, key, [DOMAIN])
    under_test = []
    for name in names:
        extra = ({"plugins": xmppd_plugins, "modern_without": modern_without}
                 if name == "xmppd" else {})
        server = SERVERS[name](workdir / name, (cert, key), plan.users, plan.fanout_contacts,
                               profile=server_profile, **extra)
        _say(f"writing {plan.users + 1:,} accounts for {name}")
        server.prepare()
        under_test.append(server)
    return under_test


def _measure(server, workload: str, plan, cores) -> dict:
    """The workload's summarized metrics; empty, with the failure in the server's problems,
    if the server or the workload failed (a long run goes on with the next one)."""
    try:
        target = server.start(workload)
        _pinner(cores)(target.pid)
        raw = asyncio.run(ALL_WORKLOADS[workload](target, plan))
    except Exception as error:  # noqa: BLE001 - reported in the table's warnings and the JSON
        server.problems.append(f"{workload} failed: {type(error).__name__}: {error}"[:2000])
        _say(f"{workload} on {server.name} failed: {type(error).__name__}: {str(error)[:300]}")
        return {}
    finally:
        server.stop()
    return {metric: summarize(values) for metric, values in raw.items()}


def _interference(results: dict, limit: float = 0.1) -> list[str]:
    """Workloads during which other processes used more than ``limit`` of a core (median):
    on a shared machine their numbers may be low."""
    warnings = []
    for server, workloads in results.items():
        for workload, metrics in workloads.items():
            for metric in ("others_cpu", "latency_others_cpu"):
                if metric in metrics and metrics[metric]["median"] > limit:
                    warnings.append(f"{workload} on {server}: other processes used "
                                    f"{metrics[metric]['median']:.2f} cores ({metric})")
    return warnings


def _pinner(cores):
    if cores is None:
        return lambda pid: None
    return lambda pid: procstats.pin(pid, cores[0])


def _machine(cores) -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "commit": commit,
            "server_cores": sorted(cores[0]) if cores else None,
            "loadgen_cores": sorted(cores[1]) if cores else None}


def _print_profile(load: str, profile: dict) -> None:
    if "skipped" in profile:
        print(f"\nprofile under {load} skipped: {profile['skipped']}")
        return
    print(f"\nxmppd under {load}: {profile['samples']} busy py-spy samples (and "
          f"{profile['idle_samples']} of threads waiting); self time by layer")
    for name, share in profile["layers"]:
        print(f"  {100 * share:5.1f}%  {name}")
    print("top functions by self time")
    for name, share in profile["functions"]:
        print(f"  {100 * share:5.1f}%  {name}")


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
