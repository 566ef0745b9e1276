"""The MUC workload: one room, ``occupants`` (100 in a full run) joined, a few of them
talking; what the room fans out.

Each occupant logs in and joins ``bench@conference.localhost`` (the first one creates it and
makes it an instant room; history off, so a join costs the same for the last as for the
first). Saturated: ``SENDERS`` occupants each keep ``WINDOW`` groupchat messages in flight,
sending the next when the room echoes one back to them; copies delivered per second, over all
occupants, and the messages per second the room took in. Then ``ROUNDS`` single messages,
each timed until every occupant has it (the room's fan-out latency).

Prosody runs its own MUC component (``Component "conference.localhost" "muc"``) beside
xmppd's ``muc`` plugin; both rooms are in memory, neither archives.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict

from bench.accounts import user_names
from bench.loadgen import Connection, Target, close_all, login_many, settle
from bench.procstats import CpuMeter
from bench.workloads import BODY, MESSAGE_END, Plan, Results, _add_cpu, marker_sink

MUC = "http://jabber.org/protocol/muc"
OWNER = "http://jabber.org/protocol/muc#owner"
SENDERS = 4
WINDOW = 8
ROUNDS = 5
FULL_OCCUPANTS = 100
_SUBJECT = re.compile(rb"<subject")
_RESULT = re.compile(rb"<iq[^>]*id=['\"]instant['\"][^>]*type=['\"]result['\"]|"
                     rb"<iq[^>]*type=['\"]result['\"][^>]*id=['\"]instant['\"]")


def room_jid(target: Target) -> str:
    return f"bench@conference.{target.domain}"


def occupants_of(plan: Plan) -> int:
    """100 occupants, or as many as a quick plan has accounts for."""
    return min(FULL_OCCUPANTS, plan.users - plan.fanout_contacts)


class Room:
    """The occupants, joined (``start()``)."""

    def __init__(self, target: Target, plan: Plan) -> None:
        self.target = target
        self.plan = plan
        self.room = room_jid(target)
        self.sessions: list[Connection] = []
        self.delivered = 0

    def join(self, session: Connection) -> bytes:
        return (f"<presence to='{self.room}/{session.user}'><x xmlns='{MUC}'>"
                f"<history maxstanzas='0'/></x></presence>").encode()

    async def start(self) -> None:
        users = user_names(self.plan.users)[self.plan.fanout_contacts:][:occupants_of(self.plan)]
        self.sessions = await login_many(self.target, users, self.plan.memory_concurrency)
        first, *others = self.sessions
        first.send(self.join(first))
        await first.expect(_SUBJECT, 30)
        first.send(f"<iq type='set' id='instant' to='{self.room}'><query xmlns='{OWNER}'>"
                   f"<x xmlns='jabber:x:data' type='submit'/></query></iq>".encode())
        await first.expect(_RESULT, 30)
        for session in others:
            session.send(self.join(session))
        await asyncio.gather(*(session.expect(_SUBJECT, 60) for session in others))
        await settle(self.plan.settle)

    def close(self) -> None:
        close_all(self.sessions)

    def _counting_sinks(self, on_own=None) -> None:
        """Every session counts the groupchat messages it gets; a sender's own echo calls
        ``on_own(sender)``."""
        def sink_for(session: Connection):
            pending = b""
            own = (f"{self.room}/{session.user}'".encode(),
                   f'{self.room}/{session.user}"'.encode())

            def sink(data: bytes) -> None:
                nonlocal pending
                pending += data
                end = pending.rfind(MESSAGE_END)
                if end < 0:
                    return
                end += len(MESSAGE_END)
                complete, pending = pending[:end], pending[end:]
                self.delivered += complete.count(MESSAGE_END)
                if on_own is not None:
                    echoes = complete.count(own[0]) + complete.count(own[1])
                    if echoes:
                        on_own(session, echoes)

            return sink

        for session in self.sessions:
            session.sink = sink_for(session)

    async def saturate(self, warmup: float, seconds: float):
        """(copies delivered/s, messages taken in/s, CpuUse) with the senders saturating."""
        message = (f"<message to='{self.room}' type='groupchat'><body>{BODY}</body>"
                   f"</message>").encode()
        running = True
        senders = self.sessions[:SENDERS]

        def refill(session: Connection, count: int) -> None:
            if running and session in senders:
                session.send(message * count)

        self._counting_sinks(refill)
        for sender in senders:
            sender.send(message * WINDOW)
        await asyncio.sleep(warmup)
        meter = CpuMeter(self.target.pid)
        before = self.delivered
        meter.start()
        await asyncio.sleep(seconds)
        copies = self.delivered - before
        cpu = meter.stop()
        running = False
        await settle(self.plan.settle)
        return copies / cpu.wall, copies / len(self.sessions) / cpu.wall, cpu

    async def round(self, number: int, timeout: float = 30.0):
        """One message, timed until every occupant has it; (seconds, occupants missing)."""
        loop = asyncio.get_running_loop()
        marker = b"room-round-%d<" % number
        waiting = len(self.sessions)
        done = loop.create_future()
        last = 0.0

        def arrived() -> None:
            nonlocal waiting, last
            last = time.perf_counter()
            waiting -= 1
            if waiting == 0 and not done.done():
                done.set_result(None)

        for session in self.sessions:
            session.sink = marker_sink(marker, arrived)
        sent = time.perf_counter()
        self.sessions[-1].send(f"<message to='{self.room}' type='groupchat'><body>"
                               f"room-round-{number}</body></message>".encode())
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            pass
        return max(last - sent, 1e-6), waiting


async def muc_room(target: Target, plan: Plan) -> Results:
    results: Results = defaultdict(list)
    room = Room(target, plan)
    try:
        await room.start()
        for _ in range(plan.reps):
            copies, taken, cpu = await room.saturate(plan.warmup, plan.message_seconds)
            results["room_copies_per_s"].append(copies)
            results["room_msgs_per_s"].append(taken)
            _add_cpu(results, cpu)
        for number in range(ROUNDS + 1):  # round 0 warms up
            elapsed, missing = await room.round(number)
            if number:
                results["room_all_ms"].append(1000 * elapsed)
                results["room_missing"].append(missing)
            await settle(plan.settle / 3)
    finally:
        room.close()
        await settle(plan.settle)
    return results
