# -*- test-case-name: tests.unit.test_upload -*-
"""The slots and their files: a record per slot in a generic map store (kept in memory
too, the plugin being the only writer), the file under the configured directory named by
the slot id alone (random, checked against ``SLOT_ID`` before any path is made, so no name a
client chooses ever reaches the file system), per-account quota, and the clean-up of unused
slots past their deadline and of files past their age."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from twisted.internet import defer, threads

from xmppd.logs import get_logger

log = get_logger(__name__)

SLOT_ID = re.compile(r"[A-Za-z0-9_-]{24}")
OWNER = "slots"  # the one owner of the map store: every slot is keyed by its id
PARTIAL = ".part"


@dataclass(frozen=True)
class Slot:
    id: str
    owner: str  # the bare JID that asked for it
    name: str  # the file name it was asked for (only ever shown, never a path)
    size: int
    type: str
    created: float
    deadline: float  # an unused slot is gone after this
    done: bool = False  # the one PUT came

    def record(self) -> dict:
        record = asdict(self)
        del record["id"]
        return record


class SlotBusy(Exception):
    """A PUT for this slot is being written."""


class QuotaExceeded(Exception):
    """The account's files and open slots would go over its quota."""

    def __init__(self, used: int, quota: int, retry_at: float | None) -> None:
        super().__init__(f"{used} of {quota} bytes used")
        self.retry_at = retry_at


class Slots:
    def __init__(self, store, directory: Path, quota: int, slot_timeout: float,
                 expire_after: float, clock) -> None:
        self.store = store
        self.directory = directory
        self.quota = quota
        self.slot_timeout = slot_timeout
        self.expire_after = expire_after  # 0: files are kept
        self.clock = clock
        self.slots: dict[str, Slot] = {}
        self.writing: set[str] = set()  # slots whose PUT is being written

    async def load(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for slot_id, record in (await self.store.items(OWNER)).items():
            if SLOT_ID.fullmatch(slot_id):
                self.slots[slot_id] = Slot(slot_id, **record)

    def path(self, slot: Slot) -> Path:
        if not SLOT_ID.fullmatch(slot.id):  # never a path from anything else
            raise ValueError("not a slot id")
        return self.directory / slot.id

    def get(self, slot_id: str) -> Slot | None:
        return self.slots.get(slot_id) if SLOT_ID.fullmatch(slot_id) else None

    def used(self, owner: str) -> int:
        """The owner's stored files and the slots still waiting for their PUT (an expired
        one no longer counts, even before the clean-up removes it)."""
        now = self.clock()
        return sum(s.size for s in self.slots.values()
                   if s.owner == owner and (s.done or s.deadline >= now))

    def reserve(self, owner: str, name: str, size: int, content_type: str) -> Slot:
        """A new slot, counted in the owner's quota at once (QuotaExceeded beyond)."""
        used = self.used(owner)
        if used + size > self.quota:
            raise QuotaExceeded(used, self.quota, self._frees_at(owner))
        now = self.clock()
        slot = Slot(secrets.token_urlsafe(18), owner, name, size, content_type, now,
                    now + self.slot_timeout)
        self.slots[slot.id] = slot
        self._write(slot)
        return slot

    def _frees_at(self, owner: str) -> float | None:
        """When the owner's oldest file expires, if files do."""
        ages = [s.created for s in self.slots.values() if s.owner == owner and s.done]
        return min(ages) + self.expire_after if ages and self.expire_after else None

    def _write(self, slot: Slot) -> defer.Deferred:
        d = self.store.set(OWNER, slot.id, slot.record())
        d.addErrback(lambda failure: log.failure("upload: could not record a slot", failure))
        return d

    def complete(self, slot: Slot, body) -> defer.Deferred:
        """Write the PUT's body (a file object of exactly the slot's size) in a thread, then
        mark the slot used; fires once the record is written. SlotBusy while another PUT
        for it is being written: one PUT per slot."""
        if slot.id in self.writing:
            raise SlotBusy(slot.id)
        self.writing.add(slot.id)
        path = self.path(slot)
        d = threads.deferToThread(_write_file, body, path)
        d.addCallback(lambda _: self._completed(slot))
        d.addBoth(self._written, slot.id)
        return d

    def _completed(self, slot: Slot) -> defer.Deferred | None:
        if slot.id not in self.slots:  # its account was deleted meanwhile
            with contextlib.suppress(OSError):
                self.path(slot).unlink()
            return None
        done = replace(slot, done=True)
        self.slots[slot.id] = done
        return self.store.set(OWNER, slot.id, done.record())

    def _written(self, result, slot_id: str):
        self.writing.discard(slot_id)
        return result

    def forget(self, slot: Slot) -> defer.Deferred:
        self.slots.pop(slot.id, None)
        with contextlib.suppress(FileNotFoundError):
            self.path(slot).unlink()
        return self.store.delete(OWNER, slot.id)

    def forget_owner(self, owner: str) -> defer.Deferred:
        """An account deleted: its files go too."""
        gone = [s for s in self.slots.values() if s.owner == owner]
        return defer.gatherResults([self.forget(slot) for slot in gone])

    def lifetime(self, slot: Slot) -> float | None:
        """Seconds until a stored file expires (0 or less: expired, not yet cleaned up);
        None when files are kept (``expire_after`` 0) until their account goes."""
        if not self.expire_after:
            return None
        return slot.created + self.expire_after - self.clock()

    def expired(self) -> list[Slot]:
        now = self.clock()
        return [s for s in self.slots.values()
                if (not s.done and s.deadline < now)
                or (s.done and self.expire_after and s.created + self.expire_after < now)]

    def clean(self) -> defer.Deferred:
        """Remove expired slots and their files, files on disk that no used slot names (a
        crash between a write and its record; a partial write) and the records of used
        slots whose file is gone. The directory is the plugin's own."""
        gone = [s for s in self.expired() if s.id not in self.writing]
        on_disk = set(os.listdir(self.directory))
        for name in on_disk:
            slot = self.slots.get(name.removesuffix(PARTIAL))
            if slot is not None and slot.id in self.writing:
                continue
            if slot is None or not slot.done or name != slot.id:  # partial files too
                with contextlib.suppress(OSError):  # gone already, or not a file of ours
                    (self.directory / name).unlink()
        gone += [s for s in self.slots.values() if s.done and s.id not in on_disk
                 and s not in gone]
        if gone:
            log.info("upload: {n} expired or missing files and slots removed", n=len(gone))
        return defer.gatherResults([self.forget(slot) for slot in gone])


def _write_file(body, path: Path) -> None:
    """Copy ``body`` to ``path`` through a partial file, so a file is whole or absent."""
    partial = path.with_name(path.name + PARTIAL)
    try:
        with open(partial, "wb") as out:
            body.seek(0)
            while chunk := body.read(65536):
                out.write(chunk)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
