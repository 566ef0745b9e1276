"""What a XEP-0198 resumption costs the servers, on the node that holds the session and on
another node of the cluster.

Starts Redis and PostgreSQL (as the tests do) and two xmppd nodes with ``smacks``. Each cycle:
alice logs in on node a (SCRAM, bind, presence, ``<enable resume/>``), bob on node a sends her
``--messages`` messages, she reads them without acknowledging any and her connection is reset;
once node a has her session hibernated, she comes back on node a (``local``) or node b
(``cross``) with ``<resume h='0'/>``, reads them again, acknowledges and logs out. On a tree
without resumption across nodes the cross resume fails: she binds anew there, and the cycle
also waits for node a to end the hibernated session (the new bind replaces it), whose
messages go to offline storage: what a client paid before. Reported: CPU seconds (user +
system) of node a, node b and Redis per cycle, for each case; wall-clock times are not (the
machine is shared).

    PYTHONPATH=. python bench/sm_resume.py --cycles 40

``--sasl2``: the same with SASL2 (XEP-0388): she logs in with Bind 2 and ``<enable/>``
inline, and comes back with ``<resume/>`` inline in ``<authenticate/>`` (a failed one binds
at once, Bind 2 giving the same device the same resource). ``--single``: one node without
``[cluster]``, the ``local`` case only (what a resumption costs where there is no cluster).

Run it on two trees one after the other (the servers run the ``xmppd`` found first on
PYTHONPATH): ``PYTHONPATH=/path/to/other/tree python bench/sm_resume.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench and tests, if not on
# PYTHONPATH (which the servers inherit: the tree named there is the one measured)

from bench.procstats import cpu_seconds  # noqa: E402

SM = "urn:xmpp:sm:3"
ALICE = "alice@localhost/phone"


def wait_for_count(proc, line: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.log().count(line) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{line!r} x{count} not in the log")
        time.sleep(0.01)


def cycle(a, b, target, bob, n: int, messages: int) -> str:
    """One login, messages, reset and resume; returns how it ended ('resumed', 'rebound')."""
    from tests.integration.test_session_hibernation import authenticated, drop
    from tests.integration.test_stream_management import enable, online, send_messages

    alice = online(a, "alice", "phone")
    sm_id = enable(alice)
    names = [f"c{n}m{i}" for i in range(messages)]
    send_messages(bob, names, to=ALICE)
    alice.read_until(f"<body>{names[-1]}</body>".encode())
    drop(alice)
    wait_for_count(a, f"session {ALICE} hibernated after", n + 1)
    again = authenticated(target, "alice")
    again.send(f"<resume xmlns='{SM}' previd='{sm_id}' h='0'/>")
    answer = again.read_until_any(b"</failed>", b"<resumed", timeout=15)
    if b"<resumed" in answer:
        again.read_until(f"<body>{names[-1]}</body>".encode())
        again.send(f"<a xmlns='{SM}' h='{messages}'/></stream:stream>")
        again.read_until_closed()
        return "resumed"
    again.send("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<resource>phone</resource></bind></iq><presence/>")
    again.read_until(b"</iq>")
    again.send("</stream:stream>")
    again.read_until_closed()
    return "rebound"


def sasl2_alice() -> str:
    """Her full JID under Bind 2: the tag, and a suffix stable for the test client's device."""
    from tests.integration.test_sasl2 import AGENT
    from xmppd.sasl2.completion import bind2_resource

    return f"alice@localhost/{bind2_resource('phone', 'alice@localhost', AGENT)}"


def sasl2_cycle(a, b, target, bob, n: int, messages: int) -> str:
    """``cycle`` with SASL2: Bind 2 and <enable/> inline; <resume/> inline."""
    from tests.integration.test_sasl2 import BIND2, SASL2, Sasl2Client, bind2, q
    from tests.integration.test_stream_management import send_messages

    alice_jid = sasl2_alice()

    alice = Sasl2Client(a)
    success = alice.scram(bind2("phone", f"<enable xmlns='{SM}' resume='true'/>"))
    sm_id = success.find(q(BIND2, "bound")).find(q(SM, "enabled")).get("id")
    alice.element("features")
    names = [f"c{n}m{i}" for i in range(messages)]
    send_messages(bob, names, to=alice_jid)
    while alice.element("message").find("{jabber:client}body").text != names[-1]:
        pass
    alice.drop()
    wait_for_count(a, f"session {alice_jid} hibernated after", n + 1)
    again = Sasl2Client(target)
    success = again.scram(f"<resume xmlns='{SM}' previd='{sm_id}' h='0'/>" + bind2("phone"))
    assert success.tag == q(SASL2, "success"), success
    resumed = success.find(q(SM, "resumed")) is not None
    if resumed:
        while again.element("message").find("{jabber:client}body").text != names[-1]:
            pass
        again.send(f"<a xmlns='{SM}' h='{messages}'/>")
    else:
        again.element("features")
        again.send("<presence/>")
    again.send("</stream:stream>")
    again.sock.settimeout(15)
    while again.sock.recv(65536):
        pass
    again.close()
    return "resumed" if resumed else "rebound"


def run_case(a, b, redis, target, cycles: int, messages: int, sasl2: bool = False) -> dict:
    from tests.integration.test_stream_management import online

    bob = online(a, "bob", "desk")
    pids = {"node a": a.process.pid, "node b": b.process.pid, "redis": redis.process.pid}
    if b is a:  # one node, no Redis
        pids = {"node a": a.process.pid}
    jid, one = (sasl2_alice(), sasl2_cycle) if sasl2 else (ALICE, cycle)
    ended = a.log().count(f"session {jid} ended after")  # a rebind on b ends a's (conflict)
    hibernated = a.log().count(f"session {jid} hibernated after")
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    outcomes = []
    for n in range(cycles):
        outcomes.append(one(a, b, target, bob, hibernated + n, messages))
        if outcomes[-1] == "rebound":  # the old session's end on node a is part of the cost
            ended += 1
            wait_for_count(a, f"session {jid} ended after", ended)
        else:
            ended = a.log().count(f"session {jid} ended after")
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    bob.send("</stream:stream>")
    bob.read_until_closed()
    return {"outcome": sorted(set(outcomes)),
            "cpu_ms_per_cycle": {name: round((after[name] - before[name]) / cycles * 1e3, 2)
                                 for name in pids}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--sasl2", action="store_true", help="log in and resume with SASL2")
    parser.add_argument("--single", action="store_true", help="one node, no cluster")
    args = parser.parse_args(argv)

    from tests.integration.conftest import PASSWORD
    from tests.integration.serverproc import XmppdProcess
    from tests.redis_server import RedisServer
    from tests.storage_engines import postgresql

    with tempfile.TemporaryDirectory(prefix="xmppd-sm-bench-") as tmp:
        root = Path(tmp)
        redis = RedisServer(root / "redis")
        redis.start()
        dsn = postgresql().fresh_database()
        nodes = {}
        try:
            for name in ("a",) if args.single else ("a", "b"):
                cluster = ("" if args.single else
                           f'[cluster]\nredis = "{redis.url}"\nnode = "{name}"\n')
                nodes[name] = XmppdProcess(root / name, extra=(
                    f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n{cluster}'
                    '[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline", '
                    '"smacks"]\n[plugins.smacks]\nresumption_timeout = 2\n'))
            for user in ("alice", "bob"):
                assert nodes["a"].ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
            for node in nodes.values():
                node.start()
            import os

            results = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "cycles": args.cycles,
                       "messages": args.messages, "sasl2": args.sasl2, "single": args.single}
            cases = ((("local", "a"),) if args.single else
                     (("local", "a"), ("cross", "b"), ("local again", "a")))
            for case, target in cases:
                results[case] = run_case(nodes["a"], nodes.get("b", nodes["a"]), redis,
                                         nodes[target], args.cycles, args.messages, args.sasl2)
            print(json.dumps(results, indent=2))
            if re.search(r"Traceback", "".join(node.log() for node in nodes.values())):
                print("a node logged a traceback", file=sys.stderr)
        finally:
            for node in nodes.values():
                node.stop(signal.SIGTERM)
            redis.stop()


if __name__ == "__main__":
    main()
