"""The one source of the current time, which tests can freeze and advance."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


def _system_now() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = _system_now


def now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return _source()


class FrozenClock:
    """A clock that stands still until told to move."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a frozen clock needs a timezone-aware datetime")
        self.at = at.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        self.at += delta
        return self.at

    def set(self, at: datetime) -> None:
        """Jump to ``at`` (timezone-aware)."""
        if at.tzinfo is None:
            raise ValueError("a frozen clock needs a timezone-aware datetime")
        self.at = at.astimezone(UTC)


@contextmanager
def frozen(at: datetime) -> Iterator[FrozenClock]:
    """Freeze ``now()`` at ``at`` inside the block; the clock can be advanced."""
    global _source
    previous = _source
    clock = FrozenClock(at)
    _source = clock
    try:
        yield clock
    finally:
        _source = previous
