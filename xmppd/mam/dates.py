"""XEP-0082 DateTime, both ways: the MAM form's 'start' and 'end', the results' delay stamps."""

from __future__ import annotations

from datetime import UTC, datetime

from xmppd.forms import FormError


def format_stamp(seconds: float) -> str:
    """POSIX seconds as a XEP-0082 DateTime in UTC with milliseconds: 2010-08-07T00:00:00.000Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_stamp(var: str, text: str) -> float:
    """A XEP-0082 DateTime (a zone is required: 'Z' or an offset) as POSIX seconds;
    FormError (bad-request) naming the field otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or "T" not in text or moment.tzinfo is None:
        raise FormError(f"field '{var}' is a XEP-0082 DateTime with a zone, not '{text[:40]}'",
                        var)
    return moment.timestamp()
