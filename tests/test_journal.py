"""The hand-over journal: what a sender noted before handing messages over, read after it died."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from mailer import journal, outbox
from tests.helpers import exited_sender


def test_a_journal_says_what_was_handed_over_and_accepted_and_nothing_is_known_without_one(
    tmp_path: Path,
) -> None:
    worker = f"{socket.gethostname()}:{os.getpid()}:abc"
    notes = journal.Journal(tmp_path, worker)
    assert journal.read(tmp_path, worker) == journal.Entries()  # nothing handed over yet
    for delivery_id in (3, 4, 17):
        notes.handing(delivery_id)
    notes.accepted(3)
    assert journal.read(tmp_path, worker) == journal.Entries(frozenset({3, 4, 17}), frozenset({3}))
    # Another machine's sender (or one from before journals): unknown, so all in doubt.
    assert journal.read(tmp_path, "elsewhere:12:def") is None
    notes.close(keep=True)
    assert journal.reader(tmp_path)(worker) == journal.read(tmp_path, worker)
    # A clean stop removes it.
    again = journal.Journal(tmp_path, worker)
    again.close(keep=False)
    assert journal.read(tmp_path, worker) is None


def test_a_line_cut_short_by_a_kill_is_harmless_and_stopped_senders_journals_are_swept(
    tmp_path: Path,
) -> None:
    ghost = exited_sender()
    alive = f"{socket.gethostname()}:{os.getpid()}:def"
    for worker in (ghost, alive):
        notes = journal.Journal(tmp_path, worker)
        notes.handing(5)
        notes.close(keep=True)
    with journal._path(tmp_path, ghost).open("a") as cut:
        cut.write("h 6\ns 6")  # killed in the middle of a line ("s 60" would be another row)
    assert journal.read(tmp_path, ghost) == journal.Entries(frozenset({5, 6}))
    assert journal.sweep(tmp_path, outbox.stopped) == 1
    assert journal.read(tmp_path, ghost) is None
    assert journal.read(tmp_path, alive) == journal.Entries(frozenset({5}))
