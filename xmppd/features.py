"""The server's disco#info identities and features, added and removed by plugins."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class ServerFeatures:
    """Counted, so two plugins advertising one feature can each withdraw it independently."""

    def __init__(self) -> None:
        self._features: Counter[str] = Counter()
        self._identities: Counter[tuple[str, str, str | None]] = Counter()

    def add_feature(self, namespace: str) -> Callable[[], None]:
        self._features[namespace] += 1
        return lambda: _decrement(self._features, namespace)

    def add_identity(self, category: str, type: str, name: str | None = None) -> Callable[[], None]:
        key = (category, type, name)
        self._identities[key] += 1
        return lambda: _decrement(self._identities, key)

    def features(self) -> list[str]:
        return sorted(self._features)

    def identities(self) -> list[tuple[str, str, str | None]]:
        return sorted(self._identities, key=lambda item: (item[0], item[1], item[2] or ""))


def _decrement(counter: Counter, key) -> None:
    if counter[key] > 1:
        counter[key] -= 1
    else:
        counter.pop(key, None)
