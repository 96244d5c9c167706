"""Benchmark: a staff login refused for each reason takes the same time.

Issue 15: a locked account answered in ~6 ms where a wrong password took ~270 ms, so
accounts could be found by timing. Here every refusal does one argon2 verification (the
production parameters, not the tests' cheap ones) against the account's hash or a dummy.
Each case runs ``--rounds`` times through the ASGI app on a real SQLite file, from its own
client address; the baseline is the wrong password for a real account, measured in the
same run, and each other case is printed as a ratio of it (target: 0.9-1.1).

    python bench/login.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

os.environ.pop("MAILER_TEST_CHEAP_HASHES", None)  # the real parameters

from fastapi.testclient import TestClient
from sqlmodel import Session

from mailer import clock, db, settings, staff
from mailer.models import StaffRole
from mailer.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
RIGHT = "the-right-password"


def _csrf(client: TestClient) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get("/staff/login").text)
    assert match
    return match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "config.toml").write_text((ROOT / "config.toml").read_text())
        url = f"sqlite:///{base / 'var' / 'mailer.db'}"
        config = settings.load(base / "config.toml", environ={"MAILER_DATABASE_URL": url})
        engine = db.create_engine(url)
        db.init_schema(engine)
        with Session(engine) as session:
            staff.add(session, "real@lepnetwork.example", StaffRole.EDITOR, RIGHT)
            staff.add(session, "gone@lepnetwork.example", StaffRole.EDITOR, RIGHT)
            staff.set_disabled(session, "gone@lepnetwork.example", True)
            staff.add(session, "busy@lepnetwork.example", StaffRole.EDITOR, RIGHT)
            session.commit()
        app = create_app(config, engine)
        cases = {
            "wrong password (baseline)": ("real@lepnetwork.example", "not-it"),
            "unknown address": ("nobody@lepnetwork.example", "not-it"),
            "disabled account": ("gone@lepnetwork.example", RIGHT),
            "account that must wait": ("busy@lepnetwork.example", RIGHT),
        }
        with Session(engine) as session:  # as after many failures: its next try waits
            busy = staff.find(session, "busy@lepnetwork.example")
            busy.failed_logins = 20
            busy.last_failed_at = clock.now()
            busy.locked_until = clock.now() + timedelta(hours=1)
            session.commit()
        times: dict[str, list[float]] = {name: [] for name in cases}
        for round_ in range(args.rounds):
            for index, (name, (email, password)) in enumerate(cases.items()):
                address = f"10.{index}.{round_ // 250}.{round_ % 250}"  # under its own limit
                client = TestClient(app, base_url="http://127.0.0.1:8000", client=(address, 1))
                token = _csrf(client)
                if index == 0:  # the baseline's account never gets to wait
                    with Session(engine) as session:
                        staff.unlock(session, email)
                        session.commit()
                started = time.perf_counter()
                answer = client.post(
                    "/staff/login", data={"csrf": token, "email": email, "password": password}
                )
                times[name].append(time.perf_counter() - started)
                assert answer.status_code == 401, (name, answer.status_code)
        engine.dispose()
    baseline = statistics.median(times["wrong password (baseline)"])
    print(f"refused logins, median of {args.rounds} each (argon2 default parameters)")
    for name, values in times.items():
        median = statistics.median(values)
        verdict = "PASS" if 0.9 <= median / baseline <= 1.1 else "FAIL"
        print(f"  {name:28} {median * 1000:7.1f} ms   ratio {median / baseline:4.2f}  {verdict}")


if __name__ == "__main__":
    main()
