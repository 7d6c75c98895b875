"""Composing e-mails: a pure function from a template name and data to subject, text, HTML.

Sending is separate (the outbox). Templates live in ``templates/mail/NAME.txt`` (first line
``Subject: ...``) and ``templates/mail/NAME.html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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


def compose(name: str, **context: Any) -> ComposedMail:
    """Render ``name``; raises ``jinja2.TemplateNotFound`` or ``UndefinedError`` on mistakes."""
    environment = _environment()
    rendered = environment.get_template(f"{name}.txt").render(**context)
    first, _, text = rendered.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"templates/mail/{name}.txt must start with a 'Subject: ' line")
    text = text.strip() + "\n"
    try:
        html = environment.get_template(f"{name}.html").render(**context)
    except TemplateNotFound:
        # Every mail has an HTML part; without a template of its own, the text in paragraphs.
        html = environment.get_template("_text.html").render(text=text)
    return ComposedMail(first.removeprefix("Subject: ").strip(), text, html)
