"""The one clock: frozen and advanced by tests, aware UTC always."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailer import clock


def test_now_is_timezone_aware_utc() -> None:
    assert clock.now().tzinfo is UTC


def test_a_frozen_clock_stands_still_and_advances_on_request() -> None:
    start = datetime(2020, 1, 9, 9, 30, tzinfo=UTC)
    with clock.frozen(start) as frozen:
        assert clock.now() == start
        assert clock.now() == start
        frozen.advance(timedelta(days=14))
        assert clock.now() == start + timedelta(days=14)
    assert clock.now() > start + timedelta(days=365)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"), clock.frozen(datetime(2027, 1, 1)):  # noqa: DTZ001
        pass
