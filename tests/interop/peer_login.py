"""A slixmpp client logged in to a peer server of the interop tests (Prosody, ejabberd)."""

from __future__ import annotations

import asyncio
import ssl


async def login_to_peer(server, user: str, password: str, *, resource: str = "test",
                        available: bool = True, timeout: float = 15.0,
                        error: type[Exception] = RuntimeError, name: str = "the peer",
                        trust_own_certificate: bool = False):
    """A client of ``server`` (it has ``jid(user)``, ``ip``, ``c2s_port``, ``certificate``
    and ``ca_file``), bound, with initial presence sent if ``available``; the caller
    disconnects it. With a certificate: STARTTLS, verified against ``ca_file`` (or the system
    CAs), and against the server's own certificate too if ``trust_own_certificate`` (a
    self-signed one anchors itself). Without one: plain TCP with PLAIN, as the server allows
    nothing better."""
    from slixmpp import ClientXMPP

    client = ClientXMPP(f"{server.jid(user)}/{resource}", password)
    client.enable_direct_tls = False
    if server.certificate is not None:
        client.enable_starttls, client.enable_plaintext = True, False
        context = ssl.create_default_context(
            cafile=str(server.ca_file) if server.ca_file else None)
        if trust_own_certificate:
            context.load_verify_locations(cafile=str(server.certificate[0]))
        client.ssl_context = context
    else:
        client.enable_starttls, client.enable_plaintext = False, True
        client.plugin["feature_mechanisms"].unencrypted_plain = True
    client.register_plugin("xep_0030")
    client.register_plugin("xep_0199")
    outcome = asyncio.get_running_loop().create_future()

    def settle(result=None, failure: BaseException | None = None) -> None:
        if not outcome.done():
            if failure is not None:
                outcome.set_exception(failure)
            else:
                outcome.set_result(result)

    def started(_event) -> None:
        if available:
            client.send_presence()
        settle(client)

    client.add_event_handler("session_start", started)
    client.add_event_handler("failed_auth", lambda stanza: settle(failure=error(
        f"{server.jid(user)} could not log in: {stanza['condition']}")))
    client.add_event_handler("connection_failed", lambda problem: settle(failure=error(
        f"could not connect to {name}: {problem}")))
    client.connect(server.ip, server.c2s_port)
    try:
        return await asyncio.wait_for(outcome, timeout)
    except BaseException:
        client.disconnect()
        raise
