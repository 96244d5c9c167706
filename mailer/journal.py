"""The hand-over journal: what each sender began handing to the relay, and what was taken.

A sender appends to its own journal, a file under ``var/journal``, a line just before
it hands a message over (``h ID``) and one as soon as the relay has accepted it
(``s ID``): one small write each, no database round trip, so it costs the send nothing.
When its claims are taken back after a crash or a lease that ran out
(:func:`mailer.outbox.recover`), a row whose acceptance the journal holds is recorded as
sent, not sent again; a row handed over without an answer may have reached the relay and
is sent again "in doubt"; the rest were never handed over and are simply queued again. A
sender whose journal cannot be read here (it ran on another machine with its own
``var``, or before journals) may have handed over any row it claimed: all are in doubt.

A line is written to the operating system before the message goes (or right after its
reply), so it survives the sender's death (SIGKILL); like SQLite's
``synchronous=NORMAL``, not a power cut.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FOLDER = "journal"
_HEADER = "sender "
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _path(folder: Path, worker: str) -> Path:
    return folder / f"{_UNSAFE.sub('_', worker)}.log"


@dataclass(frozen=True)
class Entries:
    """What one sender's journal says."""

    handing: frozenset[int] = field(default_factory=frozenset)  # begun handing over
    accepted: frozenset[int] = field(default_factory=frozenset)  # the relay said 2xx


class Journal:
    """One sender's journal, started empty."""

    def __init__(self, folder: Path, worker: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = _path(folder, worker)
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600
        )
        os.write(self._fd, f"{_HEADER}{worker}\n".encode())

    def _write(self, line: str) -> None:
        assert self._fd is not None, "the journal is closed"
        data = line.encode("ascii")
        while data:
            data = data[os.write(self._fd, data) :]

    def handing(self, delivery_id: int) -> None:
        """Note, before it happens, that this delivery is being handed over."""
        self._write(f"h {delivery_id}\n")

    def accepted(self, delivery_id: int) -> None:
        """Note that the relay accepted this delivery (before the result is recorded)."""
        self._write(f"s {delivery_id}\n")

    def close(self, *, keep: bool) -> None:
        """Close; remove the file unless ``keep`` (rows may still be claimed)."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        if not keep:
            self.path.unlink(missing_ok=True)


def read(folder: Path, worker: str) -> Entries | None:
    """What ``worker``'s journal says; None when it has no journal here (then any row it
    claimed may have been handed over)."""
    try:
        text = _path(folder, worker).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    handing: set[int] = set()
    accepted: set[int] = set()
    # Only whole lines count: one cut short (by a kill, or still being written) could
    # name another row ("s 1000" of "s 10005"); its message is treated as unanswered.
    for line in text.split("\n")[1:-1]:
        kind, _, number = line.partition(" ")
        if number.isdigit():
            (handing if kind == "h" else accepted if kind == "s" else set()).add(int(number))
    return Entries(frozenset(handing), frozenset(accepted))


def reader(folder: Path) -> Callable[[str], Entries | None]:
    """:func:`read` for the journals under ``folder``."""
    return lambda worker: read(folder, worker)


def sweep(folder: Path, stopped: Callable[[str], bool]) -> int:
    """Remove the journals of senders for which ``stopped`` is true (they have stopped and
    hold no claims: nothing will read them). Returns how many were removed."""
    removed = 0
    for path in folder.glob("*.log") if folder.is_dir() else ():
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                first = handle.readline().strip()
        except OSError:  # removed meanwhile by its own sender or another sweep
            continue
        if first.startswith(_HEADER) and stopped(first.removeprefix(_HEADER)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
