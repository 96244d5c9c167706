"""Small helpers shared by tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write CSV text with CRLF line ends, as spreadsheets save it."""
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding))
    return path


MAILER = [sys.executable, "-m", "mailer"]


def cli(project: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`mailer ARGS` as a real process in the project folder, as the README runs it (the
    configuration and database come from the environment the `project` fixture set)."""
    return subprocess.run(
        [*MAILER, *args],
        cwd=project,
        env={**os.environ, "COLUMNS": "200"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def exited_sender(suffix: str = "abc") -> str:
    """The name a sender on this machine had whose process has since exited."""
    import socket

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{socket.gethostname()}:{dead.stdout.strip()}:{suffix}"
