"""The accounts and rosters every workload logs in with, written straight into each server's
storage before it starts: thousands of accounts through the protocol or one ``adduser`` /
``prosodyctl register`` process each would take longer than the benchmark.

Accounts are ``u0``, ``u1``, ... and ``hub``. The hub and the first ``hub_contacts`` users are
mutual contacts (subscription "both" on both sides), for the presence fan-out. Every account
has the same password and the same SCRAM keys (salt, 10,000 iterations, the default of both
servers): each server still verifies every login in full, and the load generator derives the
client keys once instead of once per account.

xmppd is seeded through its own storage API (``open_storage`` ▸ users.create_user,
roster.put_item) in a subprocess, since that API runs on Twisted; Prosody's data is its
"internal" file storage: one Lua table per account and per roster.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.interop.prosody import lua
from xmppd.jid import prepare_password
from xmppd.sasl.credentials import derive_credentials

PASSWORD = "correct horse battery staple"
HUB = "hub"
_SALT = b"6f0c4b2e-bench-salt-xmppd-prosody"  # Prosody keeps salts as text: a UUID-like one


def user_names(count: int) -> list[str]:
    return [f"u{i}" for i in range(count)]


def seed_xmppd(config: Path, users: int, hub_contacts: int) -> None:
    """Create the accounts and rosters in the database ``config`` names (server stopped)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.accounts", str(config), str(users), str(hub_contacts)],
        capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"seeding xmppd failed:\n{result.stdout}{result.stderr}")


async def _seed_xmppd(reactor, config_path: str, users: int, hub_contacts: int) -> None:
    from xmppd.config import load_config
    from xmppd.storage import open_storage
    from xmppd.storage.records import RosterItem

    config = load_config(config_path)
    (domain,) = config.server.domains
    password = prepare_password(PASSWORD)
    credentials = [derive_credentials(password, name, salt=_SALT) for name in ("sha-1", "sha-256")]
    storage = open_storage(config, reactor)
    await storage.open()
    try:
        for user in [*user_names(users), HUB]:
            await storage.users.create_user(user, domain, credentials)
        for contact in user_names(hub_contacts):
            await storage.roster.put_item(HUB, domain, RosterItem(f"{contact}@{domain}",
                                                                  subscription="both"))
            await storage.roster.put_item(contact, domain, RosterItem(f"{HUB}@{domain}",
                                                                      subscription="both"))
    finally:
        await storage.close()


def write_prosody_data(data_dir: Path, domain: str, users: int, hub_contacts: int) -> None:
    """Prosody's internal storage for ``domain`` under ``data_dir`` (its ``data_path``)."""
    host_dir = data_dir / _prosody_encode(domain)
    accounts, rosters = host_dir / "accounts", host_dir / "roster"
    accounts.mkdir(parents=True, exist_ok=True)
    rosters.mkdir(parents=True, exist_ok=True)
    keys = derive_credentials(prepare_password(PASSWORD), "sha-256", salt=_SALT)
    account = _lua_file({"salt": _SALT.decode(), "iteration_count": keys.iterations,
                         "stored_key": keys.stored_key.hex(), "server_key": keys.server_key.hex()})
    for user in [*user_names(users), HUB]:
        (accounts / f"{_prosody_encode(user)}.dat").write_text(account)
    contacts = user_names(hub_contacts)
    (rosters / f"{HUB}.dat").write_text(_prosody_roster(f"{c}@{domain}" for c in contacts))
    contact_roster = _prosody_roster([f"{HUB}@{domain}"])
    for contact in contacts:
        (rosters / f"{_prosody_encode(contact)}.dat").write_text(contact_roster)


def _prosody_roster(contacts) -> str:
    # The [false] entry is the roster's metadata (version, pending requests): rostermanager.lua
    roster: dict = {False: {"version": 1, "pending": {}}}
    for contact in contacts:
        roster[contact] = {"subscription": "both", "groups": {}}
    return _lua_file(roster)


def _lua_file(value) -> str:
    return f"return {lua(value)};\n"


def _prosody_encode(name: str) -> str:
    """util.datamanager's file-name encoding: every non-alphanumeric byte as %xx."""
    return "".join(c if c.isascii() and c.isalnum() else "".join(f"%{b:02x}" for b in c.encode())
                   for c in name)


def main(argv: list[str]) -> None:
    """``python -m bench.accounts CONFIG USERS HUB_CONTACTS``: seed_xmppd's subprocess."""
    from twisted.internet import defer, task

    config, users, hub_contacts = argv
    task.react(lambda reactor: defer.ensureDeferred(
        _seed_xmppd(reactor, config, int(users), int(hub_contacts))))


if __name__ == "__main__":
    main(sys.argv[1:])
