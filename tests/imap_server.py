"""A real IMAP server for tests: Debian's Dovecot, on 127.0.0.1, in a throw-away folder.

Dovecot needs root to start (it drops to its own ``dovecot`` and ``dovenull`` users);
where it is missing or we are not root, the tests that need it are skipped and say why.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.smtp_server import free_port

DOVECOT = Path("/usr/sbin/dovecot")


def unavailable() -> str | None:
    """Why Dovecot cannot run here, or None when it can."""
    if not DOVECOT.exists():
        return f"{DOVECOT} is not installed (make test installs dovecot-imapd)"
    if os.geteuid() != 0:
        return "Dovecot needs root to start (it drops to its own users)"
    for user in ("dovecot", "dovenull"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"the {user} user is missing (reinstall dovecot-core)"
    return None


@dataclass(frozen=True)
class Mailbox:
    host: str
    port: int
    username: str
    password: str

    def client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.host, self.port)
        client.login(self.username, self.password)
        return client


_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
mail_location = maildir:{root}/mail/%u/Maildir
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 0
"""


@contextmanager
def dovecot(username: str = "bounces", password: str = "mailbox-secret") -> Iterator[Mailbox]:  # noqa: S107
    """Start Dovecot with one mailbox; stop it and remove everything afterwards."""
    # Under /tmp with a short path: Dovecot's users must reach the mail folder, and its
    # sockets need short names.
    root = Path(tempfile.mkdtemp(prefix="mailer-dv-", dir="/tmp"))
    root.chmod(0o755)
    port = free_port()
    config = root / "dovecot.conf"
    config.write_text(_CONFIG.format(root=root, port=port), encoding="utf-8")
    (root / "users").write_text(f"{username}:{{PLAIN}}{password}\n", encoding="utf-8")
    mail = root / "mail"
    mail.mkdir()
    owner = pwd.getpwnam("dovecot")
    os.chown(mail, owner.pw_uid, owner.pw_gid)
    # In the foreground (-F): the test owns the process and stops it.
    with (root / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=stderr
        )
    mailbox = Mailbox("127.0.0.1", port, username, password)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                mailbox.client().logout()
                break
            except (OSError, imaplib.IMAP4.error):
                if process.poll() is not None or time.monotonic() > deadline:
                    log = "".join(
                        (root / name).read_text(errors="replace")
                        for name in ("stderr.log", "dovecot.log")
                        if (root / name).exists()
                    )
                    raise RuntimeError(f"dovecot does not answer on {port}: {log}") from None
                time.sleep(0.1)
        yield mailbox
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        shutil.rmtree(root, ignore_errors=True)
