"""Benchmark: render an issue once, then personalise it for 100,000 recipients.

A realistic issue (the test bulletin, its sections repeated to about 40 KB of HTML) is
rendered and inlined once; then each recipient's final bytes are produced by joining the
prepared template with their values (name, signed token, Message-ID, To). The baseline,
measured in the same run, builds a full ``EmailMessage`` per recipient the usual way
(set_content + add_alternative + as_bytes) for a smaller sample.

Target (issue 3): personalising at least 100 times cheaper than the EmailMessage way, with
memory that does not grow with the number of recipients.

    python bench/render.py [--recipients 100000] [--baseline 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
import tracemalloc
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from harness import ROOT, ZONE

from mailer import clock, issuefile, publications
from mailer.content import IssueContent
from mailer.messages import MessageTemplate, Personal, issue_key, message_id
from mailer.models import Publication
from mailer.rendering import RenderedIssue, Renderer
from mailer.settings import NetworkSettings, WebSettings
from mailer.tokens import TokenSigner

NAMES = ("Ann Lee", "Bo Chan", "Zoë Brontë", "Łukasz Żółć", "Priya Patel", "Tariq Shah")


def realistic_issue(target_kb: int = 40) -> tuple[IssueContent, Renderer]:
    doc = issuefile.read(ROOT / "tests" / "data" / "issues" / "bulletin.md", ZONE)
    renderer = Renderer(
        ROOT / "templates",
        NetworkSettings(),
        WebSettings(base_url="https://lepnetwork.example"),
        ZONE,
    )
    definition = publications.load(ROOT / "lists", Publication.BULLETIN)
    sections = doc.sections
    while True:
        content = dataclasses.replace(doc, sections=sections).content()
        size = len(renderer.render(content, definition).html.encode())
        if size >= target_kb * 1024:
            return content, renderer
        sections = (*sections, dataclasses.replace(doc.sections[len(sections) % len(doc.sections)]))


def personal(signer: TokenSigner, key: str, number: int) -> Personal:
    return Personal(
        name=NAMES[number % len(NAMES)],
        email=f"reader{number}@lep{number % 38}.example",
        token=signer.recipient(number, 7),
        message_id=message_id("lepnetwork.example", key, number),
    )


def email_message_way(rendered: RenderedIssue, who: Personal, subject: str) -> bytes:
    html, text = rendered.for_reader(who.name, who.token)
    message = EmailMessage()
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = who.message_id
    message["From"] = "LEP Network <bulletin@lepnetwork.example>"
    message["To"] = f"{who.name} <{who.email}>"
    message["Subject"] = subject
    message["List-Unsubscribe"] = f"<https://lepnetwork.example/u/{who.token}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message.as_bytes(policy=SMTP)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=2_000)
    args = parser.parse_args(argv)
    content, renderer = realistic_issue()
    definition = publications.load(ROOT / "lists", Publication.BULLETIN)

    timings = []
    for _ in range(5):
        started = time.perf_counter()
        rendered = renderer.render(content, definition)
        timings.append(time.perf_counter() - started)
    render_ms = statistics.median(timings) * 1000
    started = time.perf_counter()
    template = MessageTemplate.build(
        rendered,
        definition,
        NetworkSettings(),
        subject=content.subject,
        number=content.number,
        base_url="https://lepnetwork.example",
    )
    build_ms = (time.perf_counter() - started) * 1000
    html_kb = len(rendered.html.encode()) / 1024
    signer = TokenSigner(b"bench-key-" * 4)
    key = issue_key("bulletin", content.number)
    date = format_datetime(clock.now()).encode()

    def heap_peak_mb(count: int) -> float:
        """Python heap peak while personalising ``count`` recipients (bytes then dropped)."""
        tracemalloc.start()
        for number in range(count):
            template.personalise(personal(signer, key, number), date)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak / 1e6

    # Time without tracemalloc; memory with it, for a tenth of the recipients and for all.
    started = time.perf_counter()
    total = 0
    for number in range(args.recipients):
        total += len(template.personalise(personal(signer, key, number), date))
    ours = time.perf_counter() - started
    small_peak = heap_peak_mb(max(1, args.recipients // 10))
    peak = heap_peak_mb(args.recipients)

    started = time.perf_counter()
    baseline_bytes = 0
    for number in range(args.baseline):
        baseline_bytes += len(
            email_message_way(rendered, personal(signer, key, number), content.subject)
        )
    baseline = time.perf_counter() - started

    ours_us = ours / args.recipients * 1e6
    base_us = baseline / args.baseline * 1e6
    print(
        f"Render benchmark: HTML part {html_kb:.1f} KB after inlining, "
        f"text {len(rendered.text) / 1024:.1f} KB"
    )
    print(f"render + inline once (median of 5)        {render_ms:9.1f} ms")
    print(f"prepare the message template once          {build_ms:9.1f} ms")
    print(
        f"personalise {args.recipients:,} recipients          {ours:9.2f} s   "
        f"{ours_us:7.1f} us/recipient  ({total / args.recipients / 1024:.1f} KB each)"
    )
    print(
        f"baseline: EmailMessage x {args.baseline:,}               {baseline:9.2f} s   "
        f"{base_us:7.1f} us/recipient  ({baseline_bytes / args.baseline / 1024:.1f} KB each)"
    )
    ratio = base_us / ours_us
    print(
        f"ratio: {ratio:.0f}x cheaper than the EmailMessage way  target >= 100x  "
        f"{'PASS' if ratio >= 100 else 'FAIL'}"
    )
    print(
        f"memory: heap peak {small_peak:.2f} MB for {args.recipients // 10:,} recipients, "
        f"{peak:.2f} MB for {args.recipients:,}  "
        f"{'flat' if peak < small_peak * 1.5 + 0.5 else 'GROWS'}"
    )


if __name__ == "__main__":
    main()
