"""Small helpers shared by tests."""

from __future__ import annotations

from pathlib import Path


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write CSV text with CRLF line ends, as spreadsheets save it."""
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding))
    return path
