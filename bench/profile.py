"""Where xmppd's CPU goes: py-spy samples the running server (no restart, no
instrumentation: ``--nonblocking`` never stops it) while a workload keeps it busy, and the
samples are summarised by layer and by function. Four loads: saturated one-to-one messages
(the message path), back-to-back presence fan-out rounds, and SCRAM logins in a loop, over
STARTTLS and on the plain TCP stream."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from bench.accounts import user_names
from bench.loadgen import LoginError, close_all, login, login_many, settle
from bench.workloads import Chat, FanOut, Plan

# A sample's layer: the first of these found walking from the innermost frame outwards, so
# domish.Element() built by the parser counts as parsing and a socket write under the
# serializer's caller as I/O.
LAYERS = (
    ("TLS (pyOpenSSL, Twisted's TLS protocol)", ("OpenSSL/", "twisted/protocols/tls.py")),
    ("XML parsing (expat, building elements)", ("xmppd/xml/parser.py",)),
    ("XML serialization", ("xmppd/xml/serializer.py",)),
    ("JID parsing", ("xmppd/jid.py", "precis_i18n/")),
    ("routing and dispatch", ("xmppd/router.py", "xmppd/dispatch.py", "xmppd/stanza.py")),
    ("IM plugins (presence, roster, offline)", ("xmppd/plugins/", "xmppd/im/")),
    ("logging", ("twisted/logger/", "xmppd/logs.py")),
    ("stream and session code", ("xmppd/stream/", "xmppd/c2s/")),
    ("reactor and socket I/O", ("twisted/internet/", "twisted/python/")),
)
# Samples of threads that are only waiting: the reactor in epoll, the database thread for work.
# py-spy's own idle detection misses them under --nonblocking; they are counted apart.
_IDLE = (("doPoll", "twisted/internet/epollreactor.py"), ("wait", "threading.py"),
         ("get", "queue.py"))
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


def find_py_spy() -> str | None:
    beside_python = Path(sys.executable).with_name("py-spy")
    return str(beside_python) if beside_python.exists() else shutil.which("py-spy")


def summarize_collapsed(text: str, top: int = 15) -> dict:
    """py-spy's raw output ("frame;frame;... count" per line, outermost frame first) as
    {"samples", "idle_samples", "layers": [(layer, share)], "functions": [(function, share)]}:
    shares of the busy samples, by self time."""
    layers: Counter = Counter()
    functions: Counter = Counter()
    total = idle = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_parse_frame(frame) for frame in stack.split(";")]
        if _is_idle(frames):
            idle += samples
            continue
        total += samples
        function, file = frames[-1]
        functions[f"{function} ({file})"] += samples
        layers[_layer(frames)] += samples
    if not total:
        return {"samples": 0, "idle_samples": idle, "layers": [], "functions": []}
    return {
        "samples": total,
        "idle_samples": idle,
        "layers": [(name, round(n / total, 4)) for name, n in layers.most_common()],
        "functions": [(name, round(n / total, 4)) for name, n in functions.most_common(top)],
    }


def _parse_frame(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    return (match["function"], match["file"]) if match else (frame.strip(), "")


def _is_idle(frames: list[tuple[str, str]]) -> bool:
    """The innermost frames are a wait (the leaf may be the helper the wait goes through)."""
    return any(function.rpartition(".")[2] == name and file.endswith(where)
               for function, file in frames[-2:] for name, where in _IDLE)


def _layer(frames: list[tuple[str, str]]) -> str:
    for _function, file in reversed(frames):
        for name, fragments in LAYERS:
            if any(fragment in file for fragment in fragments):
                return name
    return "other"


def profile(server, plan: Plan, load: str, seconds: float, pin_server=None) -> dict:
    """Start ``server`` (xmppd) afresh, keep it busy with ``load`` ("messages" or "fanout")
    and sample it for ``seconds``; the summary, or {"skipped": why}."""
    spy = find_py_spy()
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install -e '.[bench]')"}
    target = server.start(f"profile-{load}")
    if pin_server is not None:
        pin_server(target.pid)
    output = server.workdir / f"profile-{load}.txt"
    try:
        error = asyncio.run(LOADS[load](target, plan, _recorder(spy, target.pid, seconds, output)))
    finally:
        server.stop()
    if error:
        return {"skipped": f"py-spy failed: {error}"}
    summary = summarize_collapsed(output.read_text())
    summary["seconds"] = seconds
    return summary


def _recorder(spy: str, pid: int, seconds: float, output: Path):
    """A coroutine function: py-spy for ``seconds``; None, or what went wrong."""

    async def record() -> str | None:
        process = await asyncio.create_subprocess_exec(
            spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", "200", "--nonblocking", "--format", "raw", "--output", str(output),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, stderr = await process.communicate()
        if process.returncode != 0 or not output.exists():
            return stderr.decode(errors="replace").strip()[-500:] or f"exit {process.returncode}"
        return None

    return record


async def _while_messages_flow(target, plan: Plan, record) -> str | None:
    sessions = await login_many(target, user_names(2 * plan.pairs), plan.memory_concurrency)
    chat = Chat(target, sessions)
    stop = asyncio.Event()
    try:
        load = asyncio.ensure_future(chat.saturate(0.5, 3600, plan.window, stop))
        await asyncio.sleep(1.0)
        error = await record()
        stop.set()
        await load
    finally:
        close_all(sessions)
        await settle(plan.settle)
    return error


async def _while_presence_fans_out(target, plan: Plan, record) -> str | None:
    hub = FanOut(target, plan)
    try:
        await hub.start()
        recording = asyncio.ensure_future(record())
        number = 0
        while not recording.done():
            number += 1
            await hub.round(number)
        return recording.result()
    finally:
        hub.close()
        await settle(plan.settle)


async def _while_logins_run(target, plan: Plan, record) -> str | None:
    """``login_concurrency`` clients log in and out (SCRAM-SHA-256) until py-spy is done."""
    return await _logins_until_recorded(target, plan, record)


async def _while_logins_run_without_tls(target, plan: Plan, record) -> str | None:
    """The same on the plain TCP stream (the server allows it: bench/workloads.WITHOUT_TLS)."""
    return await _logins_until_recorded(replace(target, starttls=False), plan, record)


async def _logins_until_recorded(target, plan: Plan, record) -> str | None:
    context = target.client_context()
    users = user_names(plan.users)[plan.fanout_contacts:]  # empty rosters, as in the workload
    numbers = itertools.count()
    recording = asyncio.ensure_future(record())

    async def client() -> None:
        while not recording.done():
            number = next(numbers)
            try:
                connection = await login(target, users[number % len(users)], context,
                                         resource=f"p{number}")
            except (LoginError, OSError):
                await asyncio.sleep(0.05)
                continue
            connection.close()

    await asyncio.gather(*(client() for _ in range(plan.login_concurrency)))
    await settle(plan.settle)
    return recording.result()


LOADS = {"messages": _while_messages_flow, "fanout": _while_presence_fans_out,
         "logins": _while_logins_run, "logins_notls": _while_logins_run_without_tls}
