"""Our listeners as the config describes them: kind, address and port."""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.endpoints import _parse

from xmppd.config import Config

DEFAULT_PORTS = {"c2s": 5222, "c2s-tls": 5223, "s2s": 5269, "s2s-tls": 5270}
SRV_SERVICES = {"c2s": "_xmpp-client._tcp.", "c2s-tls": "_xmpps-client._tcp.",
                "s2s": "_xmpp-server._tcp.", "s2s-tls": "_xmpps-server._tcp."}


@dataclass(frozen=True)
class Listener:
    """One configured TCP listener: ``kind`` is c2s, c2s-tls (direct TLS), s2s or s2s-tls."""

    kind: str
    description: str
    host: str  # the interface, or 127.0.0.1 for "every address"
    port: int

    @property
    def direct_tls(self) -> bool:
        return self.kind.endswith("-tls")


def listeners(config: Config) -> list[Listener]:
    """Every TCP listener of c2s and s2s (s2s only when federation is on); UNIX ones skipped."""
    found = []
    kinds = [("c2s", config.c2s.listen), ("c2s-tls", config.c2s.direct_tls)]
    if config.s2s.listen or config.s2s.direct_tls:
        kinds += [("s2s", config.s2s.listen), ("s2s-tls", config.s2s.direct_tls)]
    for kind, descriptions in kinds:
        for description in descriptions:
            parsed = endpoint_address(description)
            if parsed is not None:
                found.append(Listener(kind, description, *parsed))
    return found


def endpoint_address(description: str) -> tuple[str, int] | None:
    """(address to reach it at, port) of a tcp:/tcp6:/ssl: endpoint string, else None."""
    args, kwargs = _parse(description)
    if not args or args[0] not in ("tcp", "tcp6", "ssl"):
        return None
    port = kwargs.get("port") or (args[1] if len(args) > 1 else None)
    if port is None or not str(port).isdigit():
        return None
    interface = kwargs.get("interface", "")
    if interface in ("", "0.0.0.0"):
        interface = "127.0.0.1"
    elif interface == "::":
        interface = "::1"
    return interface, int(port)


def federation_on(config: Config) -> bool:
    return bool(config.s2s.listen or config.s2s.direct_tls)
