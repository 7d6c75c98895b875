"""Composing e-mails: a pure function from a template name and data to subject, text, HTML.

Sending is separate (the outbox). Templates live in ``templates/mail/NAME.txt`` (first line
``Subject: ...``) and ``templates/mail/NAME.html``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

from helpdesk.clock import jst
from helpdesk.settings import ROOT


@dataclass(frozen=True, slots=True)
class ComposedMail:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=1)
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(str(ROOT / "templates" / "mail")),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["jst"] = jst
    return environment


class Redactor(Protocol):
    """What a mail to a customer goes through before it is stored (``tickets.redact``)."""

    def text(self, value: str) -> str: ...

    def html(self, value: str) -> str: ...


def compose(name: str, *, redact: Redactor | None = None, **context: Any) -> ComposedMail:
    """Render ``name``; raises ``jinja2.TemplateNotFound`` or ``UndefinedError`` on mistakes.

    With ``redact``, the subject and text are redacted before the HTML is made from them,
    and an HTML template's output is redacted too.
    """
    environment = _environment()
    rendered = environment.get_template(f"{name}.txt").render(**context)
    first, _, text = rendered.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"templates/mail/{name}.txt must start with a 'Subject: ' line")
    subject = first.removeprefix("Subject: ").strip()
    text = text.strip() + "\n"
    if redact is not None:
        subject, text = redact.text(subject), redact.text(text).strip() + "\n"
    try:
        html = environment.get_template(f"{name}.html").render(**context)
        if redact is not None:
            html = redact.html(html)
    except TemplateNotFound:
        # Every mail has an HTML part; without a template of its own, the text in paragraphs.
        html = environment.get_template("_text.html").render(text=text)
    return ComposedMail(subject, text, html)


# A first line that addresses the customer: 「山田 花子 様」「山田様、」「Hanako 様」「お客様各位」
# (but not 「お客様の商品について」, where 様 is followed by a particle).
_GREETING = re.compile(
    r"[^\s、。,.!?「」]{1,20}(?:\s[^\s、。,.!?「」]{1,20}){0,2}\s*(?:様|さま|殿)(?:各位|へ)?"
    r"(?:\s|[、,。.!]|$)"
)


def opens_with_greeting(body: str) -> bool:
    """Whether ``body`` already begins by addressing someone (「山田 花子 様」): the mail
    then adds no greeting of its own."""
    first = next((line for line in body.splitlines() if line.strip()), "")
    return _GREETING.match(unicodedata.normalize("NFKC", first).strip()) is not None
