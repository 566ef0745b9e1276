"""The ``under_attack`` workload: chat latency while hostile connections do their worst.

    python -m bench.run --workloads under_attack [--servers xmppd]

Normal users: ``2 × pairs`` sessions (100 pairs in the full plan) chatting at ``latency_rate``
messages/s in total, from 127.0.0.1; the p50/p99 of send → delivery is measured first on a
quiet server, then while 500 hostile connections (the quick plan: 50) run from 127.0.0.2-21,
each reconnecting as soon as it is thrown out:

- idle: connects and says nothing (what the per-IP caps and the negotiation deadline are for);
- slowloris: drips its stream header a byte every half second;
- guessers: STARTTLS, then PLAIN with wrong passwords for the chatting accounts, again and
  again (the back-off, the per-stream failure limit);
- garbage: a header, then XML that is not well-formed;
- flooders: logged-in accounts that send messages to themselves as fast as TCP takes them
  (the stanza and byte shapers).

It is not in the default ``make bench`` list (it takes a minute more and is a robustness
measure, not a speed one); results go to the JSON with the others'. The attack runs in a
process of its own (``python -m bench.attack``), so its work does not delay the measuring
load generator.
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import sys
from collections import defaultdict
from pathlib import Path

from bench.accounts import user_names
from bench.loadgen import PASSWORD, Target, close_all, login, login_many, settle
from bench.stats import percentile
from bench.workloads import Chat, Plan, Results

SOURCES = [f"127.0.0.{n}" for n in range(2, 22)]
MIX = {"idle": 0.5, "slowloris": 0.2, "guesser": 0.12, "garbage": 0.16, "flooder": 0.02}


async def under_attack(target: Target, plan: Plan) -> Results:
    results: Results = defaultdict(list)
    pairs = plan.pairs * 2  # 100 pairs in the full plan
    hostile = 500 if plan.reps > 1 else 50
    flooders = max(1, int(hostile * MIX["flooder"]))
    names = user_names(2 * pairs + flooders)
    sessions = await login_many(target, names[:2 * pairs], plan.memory_concurrency)
    chat = Chat(target, sessions)
    try:
        for label in ("quiet", "attack"):
            attacker = None
            if label == "attack":
                attacker = await _start_attacker(target, hostile, names[2 * pairs:],
                                                 names[:2 * pairs])
                await settle(plan.warmup)
            prefix = "" if label == "quiet" else "attack_"
            for _ in range(plan.reps):
                latencies, lost, cpu = await chat.latencies(plan.warmup, plan.latency_seconds,
                                                            plan.latency_rate)
                results[f"{prefix}latency_p50_ms"].append(1000 * percentile(latencies, 50))
                results[f"{prefix}latency_p99_ms"].append(1000 * percentile(latencies, 99))
                results[f"{prefix}latency_lost"].append(lost)
                results[f"{prefix}server_cpu"].append(round(cpu.server, 3))
                results[f"{prefix}others_cpu"].append(round(cpu.others, 3))
            if attacker is not None:
                attacker.terminate()
                output, _ = await attacker.communicate()
                for kind, count in json.loads(output or b"{}").items():
                    results[f"hostile_{kind}"].append(count)
            await settle(plan.settle / 3)
    finally:
        close_all(sessions)
        await settle(plan.settle)
    quiet, attacked = results["latency_p99_ms"], results["attack_latency_p99_ms"]
    print(f"  under_attack on {target.name}: p99 {max(quiet):.2f} ms quiet, "
          f"{max(attacked):.2f} ms under attack ({hostile} hostile connections)")
    return results


async def _start_attacker(target: Target, hostile: int, flooder_names, victims):
    """The attack runs in a process of its own, as a real attacker would: its work must not
    slow down the load generator that measures the normal users' latency."""
    command = [sys.executable, "-m", "bench.attack", json.dumps({
        "target": [target.name, target.host, target.port, target.domain, str(target.cafile),
                   target.pid],
        "hostile": hostile, "flooders": list(flooder_names), "victims": list(victims)})]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    return process


async def attack(target: Target, hostile: int, flooder_names, victims) -> dict:
    """Run every hostile behaviour until SIGTERM; the counts of what was done."""
    stop = asyncio.Event()
    counts: dict[str, int] = defaultdict(int)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    context = target.client_context()
    tasks = []
    for name in flooder_names:
        connection = await login(target, name, context, resource="flood", presence=False)
        tasks.append(asyncio.ensure_future(_flood(target, connection, stop, counts)))
    kinds = [kind for kind, share in MIX.items() if kind != "flooder"
             for _ in range(int(hostile * share))]
    for number, kind in enumerate(kinds):
        source = SOURCES[number % len(SOURCES)]
        victim = victims[number % len(victims)]
        tasks.append(asyncio.ensure_future(
            _again(BEHAVIOURS[kind], kind, target, source, victim, context, stop, counts)))
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return dict(counts)


async def _again(behaviour, kind, target, source, victim, context, stop, counts) -> None:
    """Run one hostile behaviour over and over until ``stop``."""
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                target.host, target.port, local_addr=(source, 0)), 10)
            counts[f"{kind}_connections"] += 1
            await behaviour(reader, writer, target, victim, context, counts)
        except (TimeoutError, OSError, ssl.SSLError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            if writer is not None:
                writer.transport.abort()
        await asyncio.sleep(0.2)


async def _until_closed(reader) -> None:
    while await reader.read(65536):
        pass


async def _idle(reader, writer, target, victim, context, counts) -> None:
    await _until_closed(reader)


async def _slowloris(reader, writer, target, victim, context, counts) -> None:
    closed = asyncio.ensure_future(_until_closed(reader))
    try:
        for byte in target.header * 100:
            if closed.done():
                return
            writer.write(bytes([byte]))
            await asyncio.sleep(0.5)
    finally:
        closed.cancel()


async def _garbage(reader, writer, target, victim, context, counts) -> None:
    writer.write(target.header + b"<message><body>&bogus;<</message></message>")
    await _until_closed(reader)


async def _guesser(reader, writer, target, victim, context, counts) -> None:
    import base64

    writer.write(target.header)
    await reader.readuntil(b"</stream:features>")
    writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    await reader.readuntil(b"<proceed")
    await reader.readuntil(b">")
    await writer.start_tls(context, server_hostname=target.domain)
    writer.write(target.header)
    await reader.readuntil(b"</stream:features>")
    guess = 0
    while True:
        guess += 1
        token = base64.b64encode(f"\0{victim}\0not {PASSWORD} {guess}".encode())
        writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                     + token + b"</auth>")
        answer = await reader.readuntil(b"</failure>")
        counts["guesser_failures"] += 1
        if b"<success" in answer:
            raise AssertionError("a wrong password was accepted")


async def _flood(target, connection, stop, counts) -> None:
    """A logged-in session that sends itself chat messages as fast as TCP takes them."""
    message = (f"<message to='{target.jid(connection.user)}/flood' type='chat'>"
               f"<body>{'f' * 200}</body></message>").encode() * 50
    connection.sink = lambda data: None
    try:
        while not stop.is_set() and not connection.transport.is_closing():
            if connection.transport.get_write_buffer_size() < 65536:
                connection.send(message)
                counts["flooder_stanzas_sent"] += 50
            await asyncio.sleep(0.002)
    finally:
        connection.close()


BEHAVIOURS = {"idle": _idle, "slowloris": _slowloris, "guesser": _guesser, "garbage": _garbage}


def main(argv: list[str]) -> None:
    """``python -m bench.attack JSON``: the attacker process ``under_attack`` starts."""
    spec = json.loads(argv[0])
    name, host, port, domain, cafile, pid = spec["target"]
    target = Target(name, host, port, domain, Path(cafile), pid)
    counts = asyncio.run(attack(target, spec["hostile"], spec["flooders"], spec["victims"]))
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1:])
