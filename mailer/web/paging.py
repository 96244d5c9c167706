"""Pages of a long list: which rows one page shows, and links to the pages either side that
keep the list's filters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

MAX_PAGE = 1_000_000


def page_number(raw: str | None) -> int:
    """A page number from a query string: anything but a positive number is page 1."""
    text = (raw or "").strip()
    if not text.isdigit() or not text.isascii():
        return 1
    return max(1, min(int(text[:7]), MAX_PAGE))


@dataclass(frozen=True)
class Pager:
    """Page ``number`` (from 1) of ``total`` rows, ``size`` a page, at ``path`` with
    ``params`` (the filters, kept in every link)."""

    path: str
    number: int
    size: int
    total: int
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls, path: str, raw_page: str | None, size: int, total: int, params: Mapping[str, str]
    ) -> Pager:
        """The page asked for, moved back to the last one when it is beyond the end."""
        last = max(1, -(-total // size))
        kept = tuple((k, v) for k, v in params.items() if v)
        return cls(path, min(page_number(raw_page), last), size, total, kept)

    @staticmethod
    def asked(raw_page: str | None, size: int) -> int:
        """The first row of the page asked for (before anyone knows how many there are)."""
        return (page_number(raw_page) - 1) * size

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first_shown(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last_shown(self) -> int:
        return min(self.offset + self.size, self.total)

    def link(self, number: int) -> str:
        query = [*self.params, *([("page", str(number))] if number > 1 else [])]
        return f"{self.path}?{urlencode(query)}" if query else self.path

    @property
    def query(self) -> str:
        """This page's own query string (filters and page), e.g. to come back to it."""
        return self.link(self.number).partition("?")[2]

    @property
    def previous(self) -> str | None:
        return self.link(self.number - 1) if self.number > 1 else None

    @property
    def next(self) -> str | None:
        return self.link(self.number + 1) if self.number < self.pages else None
