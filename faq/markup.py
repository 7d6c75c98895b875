"""The Markdown subset of answers: links and emphasis, rendered escaped.

An answer in ``data/faq/*.toml`` is the shop's text, line by line; it may carry links
(``[お問い合わせフォーム](/contact)``) and emphasis (``**現金のみ**``). Nothing else is
Markdown: HTML is shown as text, and a link is a link only when it goes to a path of this
site (``/returns/new?kind=defect``) or to an ``https://`` address; any other link
(``javascript:``, ``http:``, ``//elsewhere``) stays plain text, and ``faq check`` reports it.
Parsing is markdown-it-py's (inline rules only), so escaping is never hand-written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

# Inline rules only: blocks (lists, headings, quotes) would reinterpret the shop's own text
# (「1. 」, 「# 」, 「> 」) as Markdown.
_RULES = ["text", "escape", "backticks", "emphasis", "link", "newline"]
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def allowed_link(url: str) -> bool:
    """A path of this site (``/contact``, not ``//host``) or an ``https://`` address."""
    url = url.strip()
    if url.lower().startswith("https://"):
        return len(url) > len("https://")
    return url.startswith("/") and not url.startswith(("//", "/\\")) and not _SCHEME.match(url)


def _parser(validate: bool) -> MarkdownIt:
    md = MarkdownIt("zero", {"html": False, "linkify": False, "typographer": False})
    md.enable(_RULES)
    md.validateLink = allowed_link if validate else (lambda url: True)  # type: ignore[method-assign]
    return md


_SAFE = _parser(validate=True)
_ANY = _parser(validate=False)


@lru_cache(maxsize=4096)
def render(text: str) -> Markup:
    """Safe HTML of one line (or sentence) of an answer: escaped, with allowed links."""
    return Markup(_SAFE.renderInline(text))


def _inline_tokens(md: MarkdownIt, text: str) -> list[Token]:
    tokens: list[Token] = []
    for block in md.parseInline(text):
        tokens.extend(block.children or ())
    return tokens


@lru_cache(maxsize=4096)
def plain(text: str) -> str:
    """The text as read without markup: link texts stay, targets and markers go."""
    parts = []
    for token in _inline_tokens(_SAFE, text):
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Link:
    text: str
    href: str


def links(text: str) -> list[Link]:
    """Every link written in ``text``, allowed or not (for checking a knowledge base)."""
    found: list[Link] = []
    tokens = _inline_tokens(_ANY, text)
    for index, token in enumerate(tokens):
        if token.type == "link_open":
            label = []
            for inner in tokens[index + 1 :]:
                if inner.type == "link_close":
                    break
                label.append(inner.content)
            found.append(Link("".join(label), str(token.attrGet("href") or "")))
    return found


def link_problem(link: Link) -> str:
    """Why ``link`` is refused (it is not a path of this site nor https://)."""
    return f"link {link.href!r} ({link.text}) must be a path of this site (/...) or https://"


def link_problems(text: str) -> list[str]:
    """Why each link of ``text`` that would not be rendered as a link is refused."""
    return [link_problem(link) for link in links(text) if not allowed_link(link.href)]


# A paragraph made of one short line without a full stop is a heading or a list item
# (「● 代金引換にてお支払いの場合」, 「・注文番号:」): it stays with what follows it.
HEADING_CHARS = 40
_PARAGRAPHS = re.compile(r"\n[ \t\u3000]*\n")
# After 「。」, unless a closing bracket follows (「(…の発送です。)」).
_SENTENCE_END = re.compile(r"(?<=。)(?![)）」』〕】])")

#: A paragraph: its lines, each a list of sentences (markup kept in the pieces).
Paragraph = list[list[str]]


def paragraphs(text: str) -> list[Paragraph]:
    """The paragraphs of ``text`` (separated by blank lines), as lines of sentences."""
    result = []
    for block in _PARAGRAPHS.split(text.strip()):
        lines = [
            [piece for piece in _SENTENCE_END.split(line.strip()) if piece]
            for line in block.split("\n")
            if line.strip()
        ]
        if lines:
            result.append(lines)
    return result


def _is_heading(paragraph: Paragraph) -> bool:
    if len(paragraph) != 1 or len(paragraph[0]) != 1:
        return False
    text = plain(paragraph[0][0])
    return len(text) <= HEADING_CHARS and not text.endswith("。")


def sections(text: str) -> list[list[Paragraph]]:
    """The paragraphs of ``text`` grouped into sections, the unit that is shown or folded:
    a paragraph, with the headings and list items that lead up to it."""
    result: list[list[Paragraph]] = []
    pending: list[Paragraph] = []
    for paragraph in paragraphs(text):
        pending.append(paragraph)
        if not _is_heading(paragraph):
            result.append(pending)
            pending = []
    if pending:
        result.append(pending)
    return result


def render_paragraph(paragraph: Paragraph) -> Markup:
    """One paragraph as ``<p>``, lines separated by ``<br>``."""
    lines = [Markup("").join(render(sentence) for sentence in line) for line in paragraph]
    return Markup("<p>{}</p>").format(Markup("<br>").join(lines))


@lru_cache(maxsize=1024)
def render_answer(text: str) -> Markup:
    """The whole answer as safe HTML, one ``<p>`` per paragraph."""
    return Markup("\n").join(render_paragraph(p) for p in paragraphs(text))
