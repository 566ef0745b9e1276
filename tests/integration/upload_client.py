"""Run as a script: log in with slixmpp and upload a file with slixmpp's own XEP-0363 client
(``upload_file``: disco, slot, then an aiohttp PUT); prints the GET URL.

A subprocess, because aiohttp reads its CA bundle (SSL_CERT_FILE, our test certificate) once,
at import: the test that runs it sets the variable for this process only.
Usage: upload_client.py PORT JID PASSWORD FILE
"""

from __future__ import annotations

import asyncio
import ssl
import sys


async def main(port: int, jid: str, password: str, path: str) -> None:
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, password)
    client.enable_direct_tls = False
    client.ssl_context = ssl.create_default_context()  # SSL_CERT_FILE: the test's certificate
    client.register_plugin("xep_0030")
    client.register_plugin("xep_0363")
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _e: started.done() or started.set_result(1))
    client.add_event_handler("failed_auth", lambda _e: started.done() or started.set_exception(
        RuntimeError("login failed")))
    client.connect("127.0.0.1", port)
    await asyncio.wait_for(started, 15)
    url = await client.plugin["xep_0363"].upload_file(path, timeout=15)
    print(url, flush=True)
    client.disconnect()
    await asyncio.wait_for(client.disconnected, 10)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
