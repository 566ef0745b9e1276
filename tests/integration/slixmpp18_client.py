"""A poezio-era client for test_client_matrix: run by Debian's /usr/bin/python3, with Debian's
slixmpp 1.8.x (python3-slixmpp), never the venv's.

It logs in, pings the server with an IQ that has no 'to', sends one message to --peer and waits
for the answer, then prints one JSON object per step on stdout and exits 0 (1 on any failure).
The password comes from the XMPPD_TEST_PASSWORD environment variable, not the command line.
It imports nothing from this repository: its folder is first on sys.path, so the file name
must not shadow slixmpp.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp import ClientXMPP

PING_NS = "urn:xmpp:ping"


def report(**fields) -> None:
    print(json.dumps(fields), flush=True)


async def run(args: argparse.Namespace) -> int:
    client = ClientXMPP(args.jid, os.environ["XMPPD_TEST_PASSWORD"])
    context = ssl.create_default_context(cafile=args.cafile)
    if args.max_tls == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    client.ssl_context = context
    loop = asyncio.get_running_loop()
    session = loop.create_future()
    answer = loop.create_future()
    failures = []

    def on_session(_event) -> None:
        if not session.done():
            session.set_result(None)

    def on_message(message) -> None:
        if message["from"].bare == args.peer and not answer.done():
            answer.set_result(message["body"])

    def on_end(_event) -> None:
        if not session.done():
            session.set_exception(RuntimeError("the stream ended before the session started"))

    client.add_event_handler("session_start", on_session)
    client.add_event_handler("failed_auth", lambda stanza: failures.append(stanza["condition"]))
    client.add_event_handler("message", on_message)
    client.add_event_handler("disconnected", on_end)
    client.add_event_handler("stream_error", on_end)
    # 1.8's connect(): a (host, port) tuple; use_ssl is direct TLS, otherwise STARTTLS is forced
    client.connect(("127.0.0.1", args.port), use_ssl=args.direct_tls)
    try:
        await asyncio.wait_for(session, args.timeout)
        client.send_presence()  # available, so that the answer reaches this session
        socket = client.socket
        report(step="session", slixmpp=slixmpp.__version__, jid=str(client.boundjid),
               mechanism=client["feature_mechanisms"].mech.name, failures=failures,
               tls=socket.version() if hasattr(socket, "version") else None)

        iq = client.make_iq_get()  # no 'to': the ping goes to the server itself
        iq.xml.append(ET.Element(f"{{{PING_NS}}}ping"))
        result = await iq.send(timeout=args.timeout)
        report(step="ping", type=result["type"], to=iq["to"].full, frm=result["from"].full)

        client.send_message(mto=args.peer, mbody=args.body, mtype="chat")
        report(step="answer", body=await asyncio.wait_for(answer, args.timeout))
        return 0
    except Exception as error:  # the test prints what we report; exit 1 says it failed
        report(step="error", error=f"{type(error).__name__}: {error}", failures=failures)
        return 1
    finally:
        client.del_event_handler("disconnected", on_end)
        client.disconnect()
        try:
            await asyncio.wait_for(client.disconnected, 5)
        except Exception:
            pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jid", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--body", default="hello from slixmpp 1.8")
    parser.add_argument("--direct-tls", action="store_true")
    parser.add_argument("--max-tls", choices=("1.2", "1.3"), default="1.3")
    parser.add_argument("--timeout", type=float, default=15.0)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
