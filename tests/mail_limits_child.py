"""Worst-case inbound mail, and a child process that parses one and reports its peak memory.

``python tests/mail_limits_child.py FILE.eml`` reads the mail (built by the parent with
``worst_html_mail()`` or ``large_mail()``), imports the mail code, records ``ru_maxrss``
(idle), parses it as the receiver would (decode, HTML to text, reply stripping) and prints
JSON: idle and peak RSS in MB, seconds. An address-space limit makes a runaway
fail with MemoryError instead of taking the machine. Used by tests/test_mail_limits.py and
bench/mail_limits_bench.py.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
from email.message import EmailMessage

# 40,000 nested <blockquote> then 40,000 "x<br>" lines: 0.84 MB as a base64 text/html mail
# (issue 7, finding 1).
DEPTH = 40_000
MAIL_MB = 30


def worst_html() -> str:
    return "<blockquote>\n" * DEPTH + "x<br>\n" * DEPTH


def worst_html_mail() -> bytes:
    message = EmailMessage()
    message["From"] = "山田 花子 <hanako@example.jp>"
    message["To"] = "support@interiorltd.jp"
    message["Subject"] = "引用の深いメール"
    message.set_content(worst_html(), subtype="html", cte="base64")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def large_mail(megabytes: int = MAIL_MB) -> bytes:
    """Just under ``megabytes``: text, HTML and photo-sized attachments (random bytes)."""
    rng = random.Random(7)
    message = EmailMessage()
    message["From"] = "山田 花子 <hanako@example.jp>"
    message["To"] = "support@interiorltd.jp"
    message["Subject"] = "写真をお送りします"
    message.set_content("商品の写真をお送りします。\n" * 2000)
    message.add_alternative("<p>商品の写真をお送りします。</p>\n" * 2000, subtype="html")
    budget = int(megabytes * 1024 * 1024 * 0.72) - 200_000  # base64 + CRLF: data x 1.37
    index = 0
    while budget > 0:
        size = min(4 * 1024 * 1024, budget)
        message.add_attachment(
            rng.randbytes(size), maintype="image", subtype="jpeg", filename=f"photo{index}.jpg"
        )
        budget -= size
        index += 1
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))  # as SMTP sends it
    assert len(raw) < megabytes * 1024 * 1024, len(raw)
    return raw


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(path: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3))
    from helpdesk.mail.decode import parse_message
    from helpdesk.mail.reply import parse_reply, strip_quoted

    with open(path, "rb") as file:
        raw = file.read()
    parse_message(b"From: a@b.jp\r\nSubject: warm-up\r\n\r\nx\r\n")  # lazy tables, imports
    idle = _rss_mb()
    started = time.perf_counter()
    mail = parse_message(raw)
    strip_quoted(mail.text)
    parse_reply(mail.text)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "file": os.path.basename(path),
                "mail_mb": round(len(raw) / 1024 / 1024, 2),
                "idle_mb": round(idle, 1),
                "peak_mb": round(_rss_mb(), 1),
                "seconds": round(seconds, 2),
                "text_chars": len(mail.text),
                "attachments": len(mail.attachments),
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
