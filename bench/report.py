"""The side-by-side table: each headline metric for xmppd and the reference servers (Prosody,
ejabberd), xmppd's ratio to each, and the target issue 6 sets for it (met or missed; the
targets are against Prosody)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.muc import occupants_of
from bench.workloads import Plan


@dataclass(frozen=True)
class Goal:
    text: str
    check: Callable[[float, float | None], bool | None]  # (xmppd, prosody) → met?


def ratio_at_least(factor: float) -> Goal:
    return Goal(f"≥ {factor:g}× Prosody",
                lambda ours, theirs: None if not theirs else ours / theirs >= factor)


def not_above_prosody() -> Goal:
    return Goal("≤ Prosody", lambda ours, theirs: None if not theirs else ours <= theirs)


def at_most(limit: float, unit: str) -> Goal:
    return Goal(f"≤ {limit:g} {unit}", lambda ours, _theirs: ours <= limit)


@dataclass(frozen=True)
class Row:
    label: str
    workload: str
    metric: str
    digits: int = 0
    goal: Goal | None = None


def rows(plan: Plan) -> list[Row]:
    if plan.scaling:
        return scaling_rows(plan)
    low, high = plan.memory_levels[0], plan.memory_levels[-1]
    return [
        Row("Logins/s, SCRAM-SHA-256 over STARTTLS", "login_scram", "logins_per_s", 1,
            ratio_at_least(2)),
        Row("  server CPU (cores)", "login_scram", "server_cpu", 2),
        Row("  server CPU per login (ms)", "login_scram", "server_cpu_ms_per_login", 2),
        Row("  load generator CPU (cores)", "login_scram", "loadgen_cpu", 2),
        Row("  login time p50, one at a time (ms)", "login_scram", "login_p50_ms", 1),
        Row("  login time p99, one at a time (ms)", "login_scram", "login_p99_ms", 1),
        Row("Logins/s, SCRAM-SHA-256 without TLS", "login_scram_notls", "logins_per_s", 1),
        Row("  server CPU per login (ms)", "login_scram_notls", "server_cpu_ms_per_login", 2),
        Row("  login time p50, one at a time (ms)", "login_scram_notls", "login_p50_ms", 1),
        Row("  login time p99, one at a time (ms)", "login_scram_notls", "login_p99_ms", 1),
        Row("Logins/s, PLAIN over STARTTLS", "login_plain", "logins_per_s", 1),
        Row("  server CPU per login (ms)", "login_plain", "server_cpu_ms_per_login", 2),
        Row("  login time p50, one at a time (ms)", "login_plain", "login_p50_ms", 1),
        Row("  login time p99, one at a time (ms)", "login_plain", "login_p99_ms", 1),
        Row(f"Messages/s routed, saturated ({plan.pairs} pairs)", "messages", "msgs_per_s", 0,
            ratio_at_least(4)),
        Row("  server CPU (cores)", "messages", "server_cpu", 2),
        Row("  server CPU per message (µs)", "messages", "server_cpu_us_per_msg", 1),
        Row("  load generator CPU (cores)", "messages", "loadgen_cpu", 2),
        Row(f"Latency p50 at {plan.latency_rate:,} msgs/s (ms)", "messages", "latency_p50_ms", 2),
        Row(f"Latency p99 at {plan.latency_rate:,} msgs/s (ms)", "messages", "latency_p99_ms", 2,
            at_most(5, "ms")),
        Row("Logins/s, SCRAM-SHA-256 over WebSocket (wss)", "ws_login_scram", "logins_per_s", 1),
        Row("  login time p50, one at a time (ms)", "ws_login_scram", "login_p50_ms", 1),
        Row(f"Messages/s routed over WebSocket ({plan.pairs} pairs)", "ws_messages",
            "msgs_per_s", 0),
        Row("  server CPU (cores)", "ws_messages", "server_cpu", 2),
        Row(f"  latency p50 at {plan.latency_rate:,} msgs/s (ms)", "ws_messages",
            "latency_p50_ms", 2),
        Row(f"  latency p99 at {plan.latency_rate:,} msgs/s (ms)", "ws_messages",
            "latency_p99_ms", 2),
        Row("RSS idle (KiB)", "memory", "rss_idle_kib"),
        Row(f"RSS with {low:,} sessions (KiB)", "memory", f"rss_{low}_kib"),
        Row(f"RSS with {high:,} sessions (KiB)", "memory", f"rss_{high}_kib"),
        Row(f"KiB per idle TLS session ({low:,})", "memory", f"kib_per_session_{low}", 1),
        Row(f"KiB per idle TLS session ({high:,})", "memory", f"kib_per_session_{high}", 1,
            not_above_prosody()),
        Row(f"Presence fan-out deliveries/s ({plan.fanout_contacts:,} contacts)", "fanout",
            "deliveries_per_s", 0, ratio_at_least(3)),
        Row("  time until all contacts have it (ms)", "fanout", "fanout_all_ms", 1),
        Row(f"MUC copies delivered/s (one room, {occupants_of(plan)} occupants)", "muc",
            "room_copies_per_s", 0),
        Row("  groupchat messages/s taken in", "muc", "room_msgs_per_s", 1),
        Row("  server CPU (cores)", "muc", "server_cpu", 2),
        Row("  time until all occupants have one message (ms)", "muc", "room_all_ms", 1),
    ]


def scaling_rows(plan: Plan) -> list[Row]:
    """bench/scaling.py's: per level of idle sessions, then the broadcast."""
    table = [Row("RSS idle (KiB)", "idle_sessions", "rss_idle_kib")]
    for level in plan.memory_levels:
        table += [
            Row(f"RSS with {level:,} idle sessions (KiB)", "idle_sessions", f"rss_{level}_kib"),
            Row("  KiB per session", "idle_sessions", f"kib_per_session_{level}", 1),
            Row("  logging them in took (s)", "idle_sessions", f"login_{level}_s", 1),
            Row("  server CPU at idle (cores)", "idle_sessions", f"idle_cpu_{level}", 4),
            Row("  server CPU per client keepalive (µs)", "idle_sessions",
                f"keepalive_us_{level}", 1),
            Row("  keepalive round, all answered (ms)", "idle_sessions",
                f"keepalive_round_ms_{level}", 0),
            Row("  keepalives unanswered", "idle_sessions", f"keepalive_missing_{level}"),
        ]
    return table + [
        Row(f"Presence broadcast to {plan.fanout_contacts:,} contacts: all have it (ms)",
            "broadcast", "fanout_all_ms", 1),
        Row("  deliveries/s", "broadcast", "deliveries_per_s", 0),
        Row("  server CPU (cores)", "broadcast", "server_cpu", 2),
        Row("  contacts that never had it", "broadcast", "missing"),
    ]


def comparison(plan: Plan, results: dict) -> list[dict]:
    """One dict per row: label, each server's median/min/max, ratio, goal and verdict."""
    table = []
    for row in rows(plan):
        entry: dict = {"label": row.label, "workload": row.workload, "metric": row.metric}
        medians = {}
        for server, workloads in results.items():
            summary = workloads.get(row.workload, {}).get(row.metric)
            if summary is not None:
                entry[server] = {k: summary[k] for k in ("median", "min", "max")}
                medians[server] = summary["median"]
        ours, theirs = medians.get("xmppd"), medians.get("prosody")
        if ours is not None and theirs:
            entry["ratio"] = ours / theirs
        if ours is not None and medians.get("ejabberd"):
            entry["ratio_ejabberd"] = ours / medians["ejabberd"]
        if row.goal is not None and ours is not None:
            entry["goal"] = row.goal.text
            entry["met"] = row.goal.check(ours, theirs)
        entry["digits"] = row.digits
        table.append(entry)
    return table


# The ratio columns: (key in a table entry, the reference server, the column's title)
RATIOS = (("ratio", "prosody", "xmppd/Prosody"), ("ratio_ejabberd", "ejabberd", "xmppd/ejabberd"))


def render(table: list[dict], servers: list[str]) -> str:
    """A Markdown table (readable as plain text too): median (min–max) per server."""
    ratios = [(key, title) for key, server, title in RATIOS if server in servers]
    header = ["metric", *servers, *(title for _key, title in ratios), "target", "met?"]
    lines = [header]
    for entry in table:
        cells = [entry["label"]]
        for server in servers:
            value = entry.get(server)
            cells.append("—" if value is None else _cell(value, entry["digits"]))
        cells.extend(f"{entry[key]:.2f}" if key in entry else "" for key, _title in ratios)
        cells.append(entry.get("goal", ""))
        met = entry.get("met")
        cells.append("" if "goal" not in entry else {True: "yes", False: "NO"}.get(met, "n/a"))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for number, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if number == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def _cell(value: dict, digits: int) -> str:
    median, low, high = (f"{value[k]:,.{digits}f}" for k in ("median", "min", "max"))
    return median if low == high else f"{median} ({low}–{high})"
