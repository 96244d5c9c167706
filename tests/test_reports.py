"""Reports: reach per LEP and organisation, what was read without tracking anyone.

A newsletter goes out through `mailer send` (a process) to a real aiosmtpd relay that
refuses one address with a 5xx; a later DSN bounces another; readers follow its /r/ links,
open it online and unsubscribe over HTTP on a real uvicorn server; then `mailer issue
report` (a process) and the console's report page give the figures, per organisation with
the min-group folding, and the redirect tokens are decoded to show they name no one.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx2 as httpx
import pytest
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import (
    bounces,
    clicks,
    clock,
    db,
    editorial,
    issues,
    outbox,
    privacy,
    publications,
    reports,
    settings,
    staff,
    tokens,
)
from mailer.models import (
    Contact,
    Delivery,
    DeliveryStatus,
    Issue,
    Organisation,
    Publication,
    StaffAccount,
    StaffRole,
)
from mailer.organisations import Directory
from mailer.web.app import create_app
from tests.helpers import cli
from tests.outbox_fixtures import addressed, drafted, people, wire
from tests.smtp_server import RecordingHandler, free_port, running
from tests.web_fixtures import PASSWORDS, Site, build_site, csrf_of

BOUNCES = Path(__file__).parent / "data" / "bounces"
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _configure(project: Path, relay_port: int, web_port: int) -> None:
    config = project / "config.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('transport = "capture"', 'transport = "smtp"')
    text = re.sub(r"(?m)^port = 25$", f"port = {relay_port}", text)
    text = text.replace(
        'base_url = "http://127.0.0.1:8000"', f'base_url = "http://127.0.0.1:{web_port}"'
    )
    config.write_text(text, encoding="utf-8")


@pytest.fixture
def served(project: Path) -> Iterator[tuple[settings.Config, Engine, str, int]]:
    """The project's site on a real uvicorn (127.0.0.1), links in its emails pointing at it."""
    port = free_port()
    _configure(project, 25, port)
    assert cli(project, "init").returncode == 0
    config = settings.load(project / "config.toml")
    engine = db.create_engine(config.database_url)
    app = create_app(config, engine)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield config, engine, f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        engine.dispose()


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def _part(message: EmailMessage, kind: str) -> str:
    body = message.get_body((kind,))
    assert body is not None
    return str(body.get_content())


def _org(session: Session, name: str) -> int:
    found = Directory.load(session).find(name)
    assert found is not None and found.id is not None
    return found.id


def _decode(token: str) -> str:
    """What a redirect token carries: its value before the signature."""
    value, _, signature = token.rpartition(".")
    base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))  # a signature, no more
    return value


@SQLITE
def test_a_newsletter_through_a_relay_reports_reach_and_reads_per_organisation(
    project: Path, served: tuple[settings.Config, Engine, str, int]
) -> None:
    config, engine, root, port = served
    with Session(engine, expire_on_commit=False) as session:
        d2n2 = people(session, 6, org="D2N2", domain="d2n2.example")
        small = people(session, 2, org="Black Country", domain="bc.example")
        dbt = people(session, 3, org="DBT", domain="dbt.example")
        issue = drafted(session, "newsletter.md")
        issue_id = issue.id
        d2n2_id, small_id, dbt_id = (_org(session, n) for n in ("D2N2", "Black Country", "DBT"))
    assert issue_id is not None
    approved = cli(
        project, "issue", "approve", str(issue_id), "--by", "approver@lepnetwork.example"
    )
    assert approved.returncode == 0, approved.stderr
    refused = d2n2[0].email
    with running(RecordingHandler(rcpt_faults={refused: 550})) as (controller, handler):
        _configure(project, controller.port, port)
        sent = cli(project, "send", str(issue_id), "--yes")
        assert sent.returncode == 0, sent.stderr
    assert len(handler.messages) == 10
    copies = {m.recipients[0]: m for m in handler.messages}

    # A later DSN for a copy the relay had accepted: bounced, and no longer delivered.
    later = d2n2[1].email
    signer = tokens.TokenSigner(tokens.load_key(None, config.var_dir))
    dsn = addressed(wire((BOUNCES / "postfix-permanent.eml").read_bytes()), copies[later].sender)
    with Session(engine) as session:
        handled = bounces.handle(
            session, dsn, [copies[later].sender], signer, config.settings.bounces, source="smtp"
        )
    assert handled.verdict is bounces.Verdict.SUPPRESSED

    # Every copy for one organisation carries the same redirect links; they name the issue
    # and the organisation, never the person, and the text part keeps direct links.
    messages = {address: _parse(m.data) for address, m in copies.items()}
    hrefs = {
        address: re.findall(r'href="(http://127\.0\.0\.1:\d+/r/[^"]+)"', _part(m, "html"))
        for address, m in messages.items()
    }
    first = hrefs[d2n2[2].email]
    assert len(first) >= 7
    assert all(hrefs[c.email] == first for c in d2n2[1:])
    assert hrefs[dbt[0].email] != first
    token = first[0].split("/r/")[1].split("/")[0]
    assert _decode(token) == f"{issue_id:x}-{d2n2_id:x}"
    # Black Country had 2 recipients, under min_group: its copies count for no one.
    small_token = hrefs[small[0].email][0].split("/r/")[1].split("/")[0]
    assert _decode(small_token) == f"{issue_id:x}-0"
    assert all(c.email not in link and c.name not in link for c in d2n2 for link in first)
    text = _part(messages[d2n2[2].email], "plain")
    assert "/r/" not in text and "https://www.newanglia.co.uk" in text
    assert f"/u/{signer.recipient(d2n2[2].id or 0, issue_id)}" in text  # reader links: direct

    with (
        clock.frozen(clock.now()),  # every follow on one day, even near midnight
        httpx.Client(base_url=root, follow_redirects=False, timeout=10) as http,
    ):
        # One answer, straight to the issue's own link; nothing set in the browser.
        answer = http.get(first[0])
        assert answer.status_code == 302
        assert answer.headers["location"] == "https://www.newanglia.co.uk"
        assert "set-cookie" not in answer.headers
        for _ in range(2):
            assert http.get(first[0]).status_code == 302
        assert http.get(first[1]).status_code == 302
        small_link = hrefs[small[0].email][0]
        assert http.get(small_link).status_code == 302
        assert http.get(hrefs[dbt[0].email][0]).status_code == 302
        # Forged, altered or foreign: refused, and never a redirect elsewhere.
        forged = first[0].replace(
            token, token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        )
        other_issue = signer.organisation(issue_id + 1, d2n2_id)
        for bad in (
            forged,
            f"{root}/r/{other_issue}/1",
            f"{root}/r/{token}/99",
            f"{root}/r/{token}/0",
            f"{root}/r/{signer.recipient(d2n2[2].id or 0, issue_id)}/1",  # a reader token
            f"{root}/r/{token}/1?url=https://evil.example",
        ):
            answer = http.get(bad)
            if bad.endswith("evil.example"):
                assert answer.headers["location"] == "https://www.newanglia.co.uk"
                continue
            assert answer.status_code == 404, bad
            assert "location" not in answer.headers
        # The view-online page counts for the organisation; its links count too.
        view = http.get(f"{root}/v/{signer.recipient(d2n2[3].id or 0, issue_id)}")
        assert view.status_code == 200
        assert f"/r/{token}/1" in view.text
        # One reader unsubscribes with the one-click link.
        one_click = http.post(
            f"{root}/u/{signer.recipient(d2n2[4].id or 0, issue_id)}",
            data={"List-Unsubscribe": "One-Click"},
        )
        assert one_click.status_code == 200

        # The console's report page and its CSV say the same.
        with Session(engine) as session:
            for role in StaffRole:
                email = f"{role.value}@lepnetwork.example"
                known = select(StaffAccount).where(col(StaffAccount.email) == email)
                if session.exec(known).first():
                    staff.set_password(session, email, PASSWORDS[role.value])
                else:
                    staff.add(session, email, role, PASSWORDS[role.value])
            session.commit()
        form = http.get("/staff/login")
        logged = http.post(
            "/staff/login",
            data={
                "csrf": csrf_of(form.text),
                "email": "editor@lepnetwork.example",
                "password": PASSWORDS["editor"],
                "next": "/staff",
            },
        )
        assert logged.status_code == 303
        page = http.get(f"/staff/reports/issues/{issue_id}")
        assert page.status_code == 200
        assert "nobody reached" in page.text and "Other (smaller organisations" in page.text
        download = http.get(f"/staff/reports/issues/{issue_id}.csv?by=organisation")
        assert download.headers["content-type"].startswith("text/csv")
        web_rows = {row["name"]: row for row in csv.DictReader(io.StringIO(download.text))}

    report = cli(project, "issue", "report", str(issue_id), "--json")
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    rows = {row["name"]: row for row in document["reach"]["by_organisation"]}
    assert (
        rows["D2N2"]["recipients"],
        rows["D2N2"]["delivered"],
        rows["D2N2"]["failed"],
        rows["D2N2"]["bounced"],
        rows["D2N2"]["unsubscribed"],
    ) == (6, 4, 1, 2, 1)
    # Four follows of one link on one day are one organisation-day; another link is one more.
    assert (rows["D2N2"]["clicks"], rows["D2N2"]["unique_clicks"], rows["D2N2"]["views"]) == (
        5,
        2,
        1,
    )
    # Black Country (2 recipients) and DBT (3) are under min_group 5: their copies' links
    # count for no one, as "other" (one link on one day: one group-day).
    assert rows["Black Country"]["clicks"] is None and rows["DBT"]["clicks"] is None
    other = rows[reports.OTHER_LABEL]
    assert (other["recipients"], other["clicks"], other["unique_clicks"]) == (5, 2, 1)
    assert rows["Black Country"]["delivered"] == 2 and rows["DBT"]["kind"] == "government"
    total = rows["Total"]
    assert (total["recipients"], total["delivered"], total["bounced"], total["clicks"]) == (
        11,
        9,
        2,
        7,
    )
    unreached = document["reach"]["unreached_leps"]
    assert len(unreached) == 36 and "D2N2" not in unreached  # 38 LEPs, two reached
    assert rows["Cheshire and Warrington"]["reached"] is False
    assert document["warnings"] and "36 LEPs were reached at nobody" in document["warnings"][0]
    kinds = {row["key"]: row for row in document["reach"]["by_kind"]}
    # Government's 3 recipients alone would make an "other" of fewer than min_group, whose
    # figures would be theirs by subtraction: the smallest kind shown joins it.
    assert kinds["lep"]["recipients"] == 8 and kinds["lep"]["clicks"] is None
    assert kinds["government"]["clicks"] is None
    assert (kinds["other"]["recipients"], kinds["other"]["clicks"]) == (11, 7)
    links = document["reads"]["links"]
    assert links[0]["url"] == "https://www.newanglia.co.uk" and links[0]["clicks"] == 6
    # The console's CSV holds the same numbers as the command line's JSON.
    assert web_rows["D2N2"]["delivered"] == "4" and web_rows["D2N2"]["clicks"] == "5"
    assert web_rows["DBT"]["clicks"] == ""

    by_kind = cli(project, "issue", "report", str(issue_id), "--by", "kind", "--csv")
    assert by_kind.returncode == 0, by_kind.stderr
    kind_rows = {row["key"]: row for row in csv.DictReader(io.StringIO(by_kind.stdout))}
    assert kind_rows["lep"]["delivered"] == "6" and kind_rows["total"]["bounced"] == "2"
    wrong = cli(project, "issue", "report", str(issue_id), "--by", "person")
    assert wrong.returncode == 2 and "--by: choose organisation or kind" in wrong.stderr
    with Session(engine) as session:
        assert session.get(Issue, issue_id) is not None
        held = session.exec(select(Delivery).where(col(Delivery.issue_id) == issue_id)).all()
        assert {d.status for d in held} == {DeliveryStatus.SENT, DeliveryStatus.FAILED}
        names = {o.id: o.short_name for o in session.exec(select(Organisation))}
    assert names[small_id] == "Black Country" and names[dbt_id] == "DBT"


def test_figures_and_redirects_survive_the_retention_period(engine: Engine, tmp_path: Path) -> None:
    """Retention reduces the deliveries to counts: the report per organisation is the same
    and the redirects still go to the issue's links."""
    from mailer import delivery, editorial, outbox, publications
    from mailer.rendering import Renderer
    from mailer.transports import CaptureTransport
    from tests.outbox_fixtures import APPROVER, config_for

    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    signer = tokens.TokenSigner(b"k" * 32)
    renderer = Renderer.for_config(config)
    assert renderer.count_clicks
    with Session(engine) as session:
        people(session, 5, org="D2N2", domain="d2n2.example")
        issue = drafted(session, "bulletin.md")
        assert issue.id is not None
        issue_id = issue.id
        definition = publications.load(config.lists_dir, issue.publication)
        editorial.approve(
            session,
            issue_id,
            approver=APPROVER,
            renderer=renderer,
            definition=definition,
            settings=config.settings,
        )
        session.commit()
        outbox.enqueue(session, issue, definition.audience)
        session.commit()
        d2n2_id = _org(session, "D2N2")
    sender = delivery.Sender(
        engine, config, CaptureTransport(tmp_path / "mail", engine), signer=signer
    )
    delivery.run_sender(sender, issue_id=issue_id, drain=True)
    token = signer.organisation(issue_id, d2n2_id)
    zone = config.settings.calendar.zone
    with Session(engine) as session:
        target = clicks.follow(session, signer, token, 1, zone=zone)
        with clock.frozen(clock.now() + timedelta(days=1)):
            clicks.follow(session, signer, token, 1, zone=zone)  # another day: unique again
        before = reports.issue_reach(session, session.get(Issue, issue_id) or issue)
        reads = reports.issue_reads(session, before, 5)
        assert (reads.clicks, reads.unique) == (2, 2)
        assert [g.label for g in reads.organisations] == ["D2N2"]
        with clock.frozen(clock.now() + timedelta(days=800)):
            assert privacy.retain(session, config.settings.privacy.retention_days) == 5
        assert not session.exec(select(Delivery)).all()
        after = reports.issue_reach(session, session.get(Issue, issue_id) or issue)
        assert [r.as_dict() for r in after.organisations] == [
            r.as_dict() for r in before.organisations
        ]
        assert after.total.delivered == 5
        assert clicks.follow(session, signer, token, 1, zone=zone) == target
        with pytest.raises(clicks.LinkNotFound):
            clicks.follow(session, signer, token + "x", 1, zone=zone)
        assert reports.issue_reads(session, after, 6).organisations[0].label == reports.OTHER_LABEL


def _titles(svg: str) -> dict[str, str]:
    """Every bar's and point's own title in a chart: "Series, category: value"."""
    found = {}
    for title in re.findall(r"<(?:rect|circle)[^>]*><title>([^<]+)</title>", svg):
        where, _, value = title.rpartition(": ")
        found[html_unescape(where)] = value
    return found


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


@SQLITE
def test_the_year_charts_show_the_numbers_of_their_tables_and_the_board_report_prints(
    project: Path, served: tuple[settings.Config, Engine, str, int]
) -> None:
    config, engine, root, _ = served
    with Session(engine, expire_on_commit=False) as session:
        people(session, 6, org="D2N2", domain="d2n2.example")
        issue = drafted(session, "bulletin.md")
        for role in StaffRole:
            email = f"{role.value}@lepnetwork.example"
            if session.exec(select(StaffAccount).where(col(StaffAccount.email) == email)).first():
                staff.set_password(session, email, PASSWORDS[role.value])
            else:
                staff.add(session, email, role, PASSWORDS[role.value])
        session.commit()
        d2n2_id = _org(session, "D2N2")
    assert issue.id is not None
    assert (
        cli(
            project, "issue", "approve", str(issue.id), "--by", "approver@lepnetwork.example"
        ).returncode
        == 0
    )
    with running(RecordingHandler()) as (controller, _):
        _configure(project, controller.port, int(root.rsplit(":", 1)[1]))
        assert cli(project, "send", str(issue.id), "--yes").returncode == 0
    signer = tokens.TokenSigner(tokens.load_key(None, config.var_dir))
    with httpx.Client(base_url=root, follow_redirects=False, timeout=10) as http:
        token = signer.organisation(issue.id, d2n2_id)
        for position in (1, 1, 2):
            assert http.get(f"/r/{token}/{position}").status_code == 302
        form = http.get("/staff/login")
        assert (
            http.post(
                "/staff/login",
                data={
                    "csrf": csrf_of(form.text),
                    "email": "editor@lepnetwork.example",
                    "password": PASSWORDS["editor"],
                    "next": "/staff",
                },
            ).status_code
            == 303
        )
        with Session(engine) as session:
            sent = session.get(Issue, issue.id)
            assert sent is not None and sent.send_started_at is not None
            year = sent.send_started_at.astimezone(config.settings.calendar.zone).year
        page = http.get(f"/staff/reports?year={year}").text
        figures = re.findall(r'<figure class="chart" id="([^"]+)">(.*?)</figure>', page, re.S)
        assert [slug for slug, _ in figures] == [
            "targets",
            "audience-bulletin",
            "audience-newsletter",
            "rates",
            "clicks",
        ]
        for slug, body in figures:
            assert re.search(r'<svg [^>]*role="img" aria-labelledby="chart-', body), slug
            assert f'<title id="chart-{slug}-title">' in body and "<desc id=" in body
            table = re.search(r"<table[^>]*chart-data.*?</table>", body, re.S)
            assert table, slug
            header = [
                html_unescape(h)
                for h in re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', table.group(0))
            ]
            cells = {}
            for row in re.findall(r"<tr><th scope=\"row\">(.*?)</tr>", table.group(0), re.S):
                name = html_unescape(row.split("</th>")[0])
                values = re.findall(r"<td[^>]*>([^<]*)</td>", row)
                for column, value in zip(header[1:], values, strict=False):
                    cells[f"{column}, {name}"] = value
            # Every bar and point is a cell of its table, with the same number, and back;
            # so is every target line.
            bars = {k: v for k, v in cells.items() if not k.startswith("Target")}
            assert _titles(body) == bars, slug
            marks = re.findall(r'<line class="target"[^>]*><title>([^<]+)</title>', body)
            targets = {k: v for k, v in cells.items() if k.startswith("Target")}
            for mark in marks:
                where, _, value = html_unescape(mark).rpartition(": ")
                category, _, label = where.partition(", ")
                assert targets[f"{label}, {category}"] == value
            assert len(marks) == len(targets)
            download = http.get(f"/staff/reports/charts/{slug}.csv?year={year}")
            assert download.status_code == 200
            rows = list(csv.reader(io.StringIO(download.text)))
            assert [html_unescape(h) for h in rows[0]] == header
        clicks_chart = dict(figures)["clicks"]
        assert _titles(clicks_chart)[f"Clicks, bulletin {sent.number}"] == "3"
        assert _titles(clicks_chart)[f"Unique (organisation-days), bulletin {sent.number}"] == "2"
        assert (
            _titles(dict(figures)["audience-bulletin"])[f"Recipients, bulletin {sent.number}"]
            == "6"
        )
        dashboard = http.get("/staff").text
        assert 'id="targets"' in dashboard and "Sent on time" in dashboard
        everything = http.get(f"/staff/reports/issues.csv?year={year}")
        assert next(iter(csv.DictReader(io.StringIO(everything.text))))["clicks"] == "3"

        day = sent.send_started_at.astimezone(config.settings.calendar.zone).date()
        on_screen = http.get(f"/staff/reports/board?from={day.replace(day=1)}&to={day}")
        assert on_screen.status_code == 200
        assert "Reach per LEP" in on_screen.text and "/static/board.css" in on_screen.text
        assert http.get("/staff/reports/board?from=2027-03-01&to=2027-01-01").status_code == 400

    out = project / "report.html"
    made = cli(
        project, "report", "--from", str(day.replace(day=1)), "--to", str(day), "--out", str(out)
    )
    assert made.returncode == 0, made.stderr
    printed = out.read_text(encoding="utf-8")
    assert "@page { size: A4" in printed and "<link" not in printed  # one file, self-contained
    assert "Reach per LEP" in printed and "Top links" in printed and "List growth" in printed
    assert "D2N2" in printed and "nobody reached" in printed  # the 37 other LEPs
    assert printed.count('<figure class="chart"') == 4
    as_json = json.loads(
        cli(project, "report", "--from", str(day.replace(day=1)), "--to", str(day), "--json").stdout
    )
    assert as_json["clicks"] == 3 and len(as_json["leps"]) == 38
    assert as_json["top_links"][0]["clicks"] == 2
    backwards = cli(project, "report", "--from", "2027-03-01", "--to", "2027-01-01")
    assert (
        backwards.returncode == 2
        and "--to: 2027-01-01 is before --from 2027-03-01" in backwards.stderr
    )
    no_pdf = cli(project, "report", "--pdf", "--out", str(project / "r.pdf"))
    if not board_pdf_available():
        assert no_pdf.returncode == 2 and "WeasyPrint" in no_pdf.stderr


def board_pdf_available() -> bool:
    from mailer import board

    return board.pdf_available()


def test_links_whose_text_is_an_address_and_reader_links_stay_direct_and_off_means_direct(
    tmp_path: Path,
) -> None:
    """The visible text of a counted link is never an address other than where it goes
    (spam filters and readers alike look for that); with count_clicks off every link is
    direct; the privacy notice says what is counted, and that nothing identifies a reader."""
    page = (
        '<a href="https://www.gov.uk/x">Skills England report</a> '
        '<a href="https://www.gov.uk/y">www.gov.uk/y</a> '
        '<a href="https://evil.example/">https://www.gov.uk/</a> '
        '<a href="https://site.example/u/TOKEN">Unsubscribe</a> '
        '<a href="mailto:news@lepnetwork.example">news@lepnetwork.example</a>'
    )
    tracked, links = clicks.track(
        page, root="https://site.example", slot="SLOT", keep=("https://site.example/u/TOKEN",)
    )
    assert links == (clicks.TrackedLink("https://www.gov.uk/x", "Skills England report"),)
    assert '<a href="https://site.example/r/SLOT/1">Skills England report</a>' in tracked
    assert '<a href="https://www.gov.uk/y">www.gov.uk/y</a>' in tracked
    assert '<a href="https://evil.example/">https://www.gov.uk/</a>' in tracked
    assert clicks.direct(tracked, "SLOT", links) == page

    from mailer.models import Publication
    from tests.rendering_fixtures import FIXED_SLOTS, content, definition
    from tests.rendering_fixtures import renderer as plain_renderer

    shipped = plain_renderer()
    assert not shipped.count_clicks  # the test renderer: direct links, as with count_clicks off
    rendered = shipped.render(
        content(Publication.NEWSLETTER), definition(Publication.NEWSLETTER), FIXED_SLOTS
    )
    assert "/r/" not in rendered.html and rendered.tracked == ()

    from fastapi.testclient import TestClient

    from tests.outbox_fixtures import config_for

    config = config_for(f"sqlite:///{tmp_path / 'p.db'}", tmp_path)
    engine = db.create_engine(config.database_url)
    db.init_schema(engine)
    notice = TestClient(create_app(config, engine)).get("/privacy").text
    assert "never you" in notice and "no tracking pixel" in notice
    assert "we do not ask for consent" in notice and "at least 5 of its people" in notice
    engine.dispose()


def _approved(session: Session, site: Site) -> Issue:
    """The realistic bulletin, drafted and approved with the site's own renderer (which
    counts clicks), not yet committed."""
    issue = drafted(session)
    assert issue.id is not None
    editorial.approve(
        session,
        issue.id,
        approver="approver@lepnetwork.example",
        renderer=site.app.state.ctx.renderer,
        definition=publications.load(site.config.lists_dir, issue.publication),
        settings=site.config.settings,
    )
    return issue


@SQLITE
def test_a_redirect_works_only_once_its_issue_has_gone_out(engine: Engine, tmp_path: Path) -> None:
    site = build_site(engine, tmp_path)
    ctx = site.app.state.ctx
    with Session(engine) as session:
        people(session, 6, org="D2N2", domain="d2n2.example")
        issue = _approved(session, site)
        assert issue.id is not None
        session.commit()
        issue_id = issue.id
        d2n2 = _org(session, "D2N2")
    link = f"/r/{ctx.signer.organisation(issue_id, d2n2)}/1"
    client = site.client()
    assert client.get(link).status_code == 404  # approved, not sent: no redirect, no count
    with Session(engine) as session:
        outbox.enqueue(
            session,
            issues.get(session, issue_id),
            publications.load(site.config.lists_dir, Publication.BULLETIN).audience,
        )
        session.commit()
    asyncio.run(ctx.drain_outbox())
    assert client.get(link).status_code == 302
    with Session(engine) as session:
        assert clicks.clicks_of(session, issue_id)


@SQLITE
def test_a_copy_counts_where_it_went_whatever_its_reader_does_later(
    engine: Engine, tmp_path: Path
) -> None:
    site = build_site(engine, tmp_path)
    ctx = site.app.state.ctx
    with Session(engine, expire_on_commit=False) as session:
        readers = people(session, 6, org="D2N2", domain="d2n2.example")
        issue = _approved(session, site)
        assert issue.id is not None
        rule = publications.load(site.config.lists_dir, Publication.BULLETIN).audience
        outbox.enqueue(session, issues.get(session, issue.id), rule)
        session.commit()
        issue_id, d2n2, moved_to = issue.id, _org(session, "D2N2"), _org(session, "DBT")
    asyncio.run(ctx.drain_outbox())
    with Session(engine) as session:
        mover = session.get(Contact, readers[0].id)
        assert mover is not None
        mover.organisation_id = moved_to  # after the send: to an outside organisation
        session.commit()
        reach = reports.issue_reach(session, issues.get(session, issue_id))
    assert reach.recipients_of(d2n2) == 6
    assert reach.recipients_of(moved_to) == 0  # an internal bulletin never "went" outside
    view = site.client().get(f"/v/{ctx.signer.recipient(readers[0].id or 0, issue_id)}")
    assert view.status_code in (200, 400)  # the firewall decides what the mover may read
    with Session(engine) as session:
        assert all(org != moved_to for (_, org) in clicks.clicks_of(session, issue_id))
