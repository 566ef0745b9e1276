"""XEP-0077 in-band registration against a real server over real TLS, with slixmpp's
xep_0077: register then log in, change the password, remove the account; and a closed
server that accepts only a token from ``xmppdctl invite``."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl

import pytest

from tests.integration.conftest import PASSWORD, LoginFailed, assert_log_for_admins, login
from tests.integration.serverproc import XmppdProcess

PLUGINS = '[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline", "register"]\n'
NEW_PASSWORD = "another correct horse"


def start(tmp_path, options: str) -> XmppdProcess:
    proc = XmppdProcess(tmp_path, extra=PLUGINS + "[plugins.register]\n" + options)
    proc.start()
    return proc


def stop(proc: XmppdProcess) -> None:
    code = proc.stop(signal.SIGTERM)
    log = proc.log()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert_log_for_admins(log)


async def register_and_log_in(proc: XmppdProcess, jid: str, password: str,
                              token: str | None = None, timeout: float = 20.0):
    """A slixmpp client that registers in-band on its STARTTLS stream, then logs in."""
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, password, sasl_mech="SCRAM-SHA-256")
    client.enable_starttls = True
    client.enable_direct_tls = False
    client.enable_plaintext = False
    client.ssl_context = ssl.create_default_context(cafile=str(proc.cert))
    for plugin in ("xep_0004", "xep_0030", "xep_0066", "xep_0077"):
        client.register_plugin(plugin)
    client.add_filter("in", _register_when_invited)
    outcome = asyncio.get_running_loop().create_future()

    async def on_register(_form) -> None:
        iq = client.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = client.boundjid.user
        iq["register"]["password"] = password
        if token is not None:
            iq["register"].xml.append(_token(token))
        try:
            await iq.send()
        except Exception as error:  # IqError: the registration was refused
            if not outcome.done():
                outcome.set_exception(error)

    def started(_event) -> None:
        if not outcome.done():
            outcome.set_result(client)

    def failed(stanza) -> None:
        if not outcome.done():
            outcome.set_exception(LoginFailed(stanza["condition"]))

    client.add_event_handler("register", on_register)
    client.add_event_handler("session_start", started)
    client.add_event_handler("failed_auth", failed)
    client.connect("127.0.0.1", proc.c2s_port)
    try:
        return await asyncio.wait_for(outcome, timeout)
    except BaseException:
        client.disconnect()
        raise


def _register_when_invited(stanza):
    """Register where XEP-0445's feature says invitations are taken (a closed server does
    not offer XEP-0077's own feature; slixmpp's force_registration never fires after
    STARTTLS on its asyncio transport)."""
    from slixmpp.stanza import StreamFeatures

    if (isinstance(stanza, StreamFeatures)
            and stanza.xml.find("{urn:xmpp:ibr-token:0}register") is not None):
        stanza.enable("register")
    return stanza


def _token(token: str):
    from xml.etree import ElementTree

    element = ElementTree.Element("{jabber:iq:register}token")
    element.text = token
    return element


def test_register_change_password_and_remove(tmp_path):
    proc = start(tmp_path, "open = true\n")
    try:
        async def scenario():
            client = await register_and_log_in(proc, "carol@localhost", PASSWORD)
            await client.plugin["xep_0077"].change_password(NEW_PASSWORD)
            client.disconnect()
            with pytest.raises(LoginFailed):
                await login(proc, "carol@localhost/old", PASSWORD)
            again = await login(proc, "carol@localhost/new", NEW_PASSWORD)
            gone = asyncio.get_running_loop().create_future()
            again.add_event_handler("disconnected",
                                    lambda *_: gone.done() or gone.set_result(True))
            again.register_plugin("xep_0077")  # the shared login helper leaves it out
            await again.plugin["xep_0077"].cancel_registration()
            await asyncio.wait_for(gone, 10)

        asyncio.run(scenario())
        users = proc.ctl("users")
        assert "carol@localhost" not in users.stdout, users
    finally:
        stop(proc)


def test_closed_server_registers_only_with_an_invitation(tmp_path):
    proc = start(tmp_path, "open = false\n")
    try:
        invited = proc.ctl("invite", "dave")
        assert invited.returncode == 0, invited.stderr
        token = _find_token(invited.stdout)
        anyone = proc.ctl("invite")
        assert anyone.returncode == 0, anyone.stderr
        assert "xmpp:localhost?register;preauth=" in anyone.stdout, anyone.stdout
        open_token = _find_token(anyone.stdout)

        async def scenario():
            from slixmpp.exceptions import IqError

            # refused: slixmpp reports the IQ error, or goes on to a SASL failure
            with pytest.raises((IqError, LoginFailed)):
                await register_and_log_in(proc, "erin@localhost", PASSWORD)
            client = await register_and_log_in(proc, "dave@localhost", PASSWORD, token=token)
            client.disconnect()
            with pytest.raises((IqError, LoginFailed)):
                await register_and_log_in(proc, "dave2@localhost", PASSWORD, token=token)
            other = await register_and_log_in(proc, "frank@localhost", PASSWORD,
                                              token=open_token)
            other.disconnect()

        asyncio.run(scenario())
        users = proc.ctl("users").stdout.split()
        assert "dave@localhost" in users and "erin@localhost" not in users, users
        assert "dave2@localhost" not in users and "frank@localhost" in users, users
    finally:
        stop(proc)


def _find_token(output: str) -> str:
    """The token in what ``xmppdctl invite`` prints (JSON, or key/value lines)."""
    try:
        return json.loads(output)["token"]
    except (ValueError, KeyError, TypeError):
        pass
    for line in output.splitlines():
        if "preauth=" in line:
            return line.split("preauth=", 1)[1].split()[0].strip("\"',")
    raise AssertionError(f"no token in {output!r}")
