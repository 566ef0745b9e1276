# -*- test-case-name: tests.unit.test_hostile_conformance -*-
"""The stream version we answer with (RFC 6120 §4.7.5), for every receiving stream.

We speak XMPP 1.0. The receiving entity answers with the lower of the version offered and its
own, so an initiator offering 2.0 (or 1.5) gets a '1.0' header and our features, and decides
itself whether it can go on; refusing it with <unsupported-version/> would break every future
client. A stream without 'version' is pre-1.0 (RFC 6120 §4.7.5: "0.9"): its header gets no
version and the stream then ends with <unsupported-version/>, as one below 1.0 does, since
XMPP 0.9 has no stream features, SASL or TLS. A version that is not two integers is not
something we can compare and is refused the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

OURS = (1, 0)


@dataclass(frozen=True)
class VersionAnswer:
    """What our header says (None: no 'version' attribute) and whether the stream goes on."""

    header: str | None
    supported: bool


CURRENT = VersionAnswer("1.0", True)  # the answer to nearly every stream: made once


def answer_version(offered: str | None) -> VersionAnswer:
    """Our answer to a stream header whose 'version' is ``offered``."""
    if offered == "1.0":
        return CURRENT
    if offered is None:
        return VersionAnswer(None, False)
    parsed = _parse(offered)
    if parsed is None:
        return VersionAnswer("1.0", False)
    if parsed < OURS:
        return VersionAnswer(f"{parsed[0]}.{parsed[1]}", False)
    return CURRENT


def _parse(value: str) -> tuple[int, int] | None:
    """'major.minor' as two integers (leading zeros ignored, RFC 6120 §4.7.5), else None."""
    major, dot, minor = value.strip().partition(".")
    if not dot or not (major.isascii() and major.isdigit() and minor.isascii()
                       and minor.isdigit()):
        return None
    major, minor = major.lstrip("0") or "0", minor.lstrip("0") or "0"
    if len(major) > 9:  # a number nobody will ever mean: no big-number work for a stranger
        return (10**9, 0)
    return int(major), int(minor[:9])
