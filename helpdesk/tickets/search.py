"""Full-text search over tickets, in Japanese, with the database's own index.

One search document per ticket holds index terms: the FAQ's Sudachi analysis
(``faq.analysis``) of the customer's name, the subject and every message (each word's
normalized form, its surface and its shorter parts, so 「傷」 finds 「傷がありました」 and
「情報」 finds 「個人情報」), plus the raw identifiers (reference, order number, the e-mail
address and its parts, the name's parts, and ASCII words such as order numbers written in a
message). A query is analyzed the same way; every one of its words must be in a ticket's
document (an ASCII word as a prefix: 「hanako」 finds hanako@example.jp).

The document is written in the same transaction as the ticket or message it comes from
(``TicketService``); ``TicketService.backfill_search`` fills in tickets that have none.

One implementation per dialect behind ``SearchIndex``:

- SQLite: an FTS5 virtual table ``ticket_search(terms)``, rowid = ticket id; the terms
  joined by spaces, tokenized by ``unicode61`` keeping ``- @ . _ +`` inside a token (an
  address or an order number is one token); queries are FTS5 phrases, so whatever the
  tokenizer splits, the document and the query split alike.
- PostgreSQL: ``ticket_search(ticket_id, document tsvector)`` with a GIN index; the
  document is ``array_to_tsvector(terms)`` (the terms as lexemes, no parser in between)
  and the query a ``tsquery`` of the same lexemes.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import ARRAY, Integer, Text, bindparam, column, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from faq.analysis import MAX_ANALYZED_CHARS, Analyzer
from faq.normalize import normalize
from helpdesk.models import Customer, Message, Ticket

#: A longer query is refused (the console says so).
MAX_QUERY_CHARS = 200
#: At most this many words of a query are searched.
MAX_QUERY_TERMS = 8
#: Terms longer than this are not indexed (nobody searches for them; PostgreSQL limits a
#: lexeme's size).
MAX_TERM_CHARS = 64
#: Text indexed per message (the forms and mail keep 5,000 characters).
MAX_INDEXED_CHARS = 20_000

_IDENTIFIER = re.compile(r"[a-z0-9][a-z0-9@._+\-]*[a-z0-9]|[a-z0-9]")
_ASCII_WORD = re.compile(r"[\x21-\x7e]+")
_SENTENCE_END = re.compile(r"[。！？!?\n]")

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _analyzer() -> Analyzer:
    # Its own tokenizer: the FAQ's is used on the event loop's thread, this one in a worker
    # thread (a SudachiPy tokenizer is not shared between threads).
    return Analyzer()


def _chunks(text: str) -> Iterable[str]:
    """``text`` in pieces the analyzer takes whole, cut after a sentence where possible."""
    while text:
        if len(text) <= MAX_ANALYZED_CHARS:
            yield text
            return
        cut = MAX_ANALYZED_CHARS
        ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, MAX_ANALYZED_CHARS)]
        if ends and ends[-1] > MAX_ANALYZED_CHARS // 2:
            cut = ends[-1]
        yield text[:cut]
        text = text[cut:]


def _clean(terms: Iterable[str]) -> set[str]:
    return {t for t in terms if t and len(t) <= MAX_TERM_CHARS and not t.isspace()}


def text_terms(*texts: str | None) -> set[str]:
    """Index terms of free text (names, subjects, messages): Sudachi's normalized forms,
    surfaces and parts, and the ASCII identifiers in it. Blocking: call it off the event
    loop (``text_terms_async``)."""
    terms: set[str] = set()
    for raw in texts:
        if not raw:
            continue
        normalized = normalize(raw[:MAX_INDEXED_CHARS])
        terms.update(_IDENTIFIER.findall(normalized))
        terms.update(normalized.split(" ") if len(normalized) <= MAX_TERM_CHARS else ())
        with _lock:
            analyzer = _analyzer()
            for chunk in _chunks(normalized):
                for token in analyzer.tokens(chunk, normalized=True):
                    terms.add(token.term)
                    terms.add(normalize(token.surface))
                    terms.update(token.subunits)
    return _clean(t.replace(" ", "") for t in terms)


async def text_terms_async(*texts: str | None) -> set[str]:
    return await asyncio.to_thread(text_terms, *texts)


def identifier_terms(
    *, reference: str, order_number: str | None, email: str, name: str
) -> set[str]:
    """The raw identifiers of a ticket: reference, order number, the address, its local
    part and domain, the name and its parts (「山田 花子」: 山田, 花子)."""
    terms = {normalize(reference)}
    if order_number:
        number = normalize(order_number)
        terms.add(number.replace(" ", ""))
        terms.update(_IDENTIFIER.findall(number))
    address = normalize(email)
    local, _, domain = address.partition("@")
    terms.update({address, local, domain})
    name = normalize(name)
    terms.add(name.replace(" ", ""))
    terms.update(name.split(" "))
    return _clean(terms)


def query_terms(query: str) -> list[tuple[str, bool]]:
    """The words a ticket must hold to match ``query``: ``(term, prefix)`` pairs.

    Each whitespace-separated part: an ASCII one (an order number, an address, a
    reference) is one term matched as a prefix; any other is analyzed like the documents
    (「傷が」 → 傷), or taken whole when the analysis keeps nothing. Blocking (Sudachi).
    """
    found: list[tuple[str, bool]] = []
    for part in normalize(query[:MAX_QUERY_CHARS]).split(" "):
        if not any(c.isalnum() for c in part):
            continue  # punctuation alone names nothing (and is in no document)
        if _ASCII_WORD.fullmatch(part):
            found.append((part, True))
            continue
        with _lock:
            tokens = _analyzer().tokens(part, normalized=True)
        words = [t.term for t in tokens if len(t.term) <= MAX_TERM_CHARS]
        found.extend((w, False) for w in (words or [part[:MAX_TERM_CHARS]]))
    unique = list(dict.fromkeys(found))
    return unique[:MAX_QUERY_TERMS]


async def query_terms_async(query: str) -> list[tuple[str, bool]]:
    return await asyncio.to_thread(query_terms, query)


class SearchIndex(Protocol):
    """The tickets' search documents in one database dialect."""

    async def add(self, session: AsyncSession, *, ticket_id: int, terms: Iterable[str]) -> None:
        """Add ``terms`` to the ticket's document (made if it has none)."""

    async def replace(self, session: AsyncSession, *, ticket_id: int, terms: Iterable[str]) -> None:
        """Make ``terms`` the ticket's whole document."""

    def matching(self, terms: Sequence[tuple[str, bool]]) -> ColumnElement[bool]:
        """A condition on ``Ticket``: its document holds every term."""

    async def unindexed(self, session: AsyncSession, *, after_id: int, limit: int) -> list[int]:
        """Ids of tickets after ``after_id`` without a document, in order."""

    async def forget_replaced(self, session: AsyncSession) -> None:
        """Make sure replaced or deleted documents' words are gone from the database's
        storage (after an erasure), not only unreachable by a search."""


def _missing_query(table_key: str, after_id: int, limit: int) -> Any:
    return text(
        f"SELECT ticket.id FROM ticket WHERE ticket.id > :after AND NOT EXISTS "
        f"(SELECT 1 FROM ticket_search WHERE ticket_search.{table_key} = ticket.id) "
        "ORDER BY ticket.id LIMIT :limit"
    ).bindparams(after=after_id, limit=limit)


class SqliteSearch:
    """FTS5: ``ticket_search(terms)``, rowid = the ticket's id."""

    async def forget_replaced(self, session: AsyncSession) -> None:
        # FTS5 deletes by writing markers: the old tokens stay in the segments (and in
        # every backup) until they are merged. 'optimize' merges them all now.
        await session.execute(text("INSERT INTO ticket_search(ticket_search) VALUES('optimize')"))

    async def add(self, session: AsyncSession, *, ticket_id: int, terms: Iterable[str]) -> None:
        joined = " ".join(sorted(_clean(terms)))
        if not joined:
            return
        updated = await session.execute(
            text("UPDATE ticket_search SET terms = terms || ' ' || :terms WHERE rowid = :id"),
            {"terms": joined, "id": ticket_id},
        )
        if getattr(updated, "rowcount", 0) == 0:
            await session.execute(
                text("INSERT INTO ticket_search (rowid, terms) VALUES (:id, :terms)"),
                {"terms": joined, "id": ticket_id},
            )

    async def replace(self, session: AsyncSession, *, ticket_id: int, terms: Iterable[str]) -> None:
        await session.execute(
            text("DELETE FROM ticket_search WHERE rowid = :id"), {"id": ticket_id}
        )
        await session.execute(
            text("INSERT INTO ticket_search (rowid, terms) VALUES (:id, :terms)"),
            {"terms": " ".join(sorted(_clean(terms))), "id": ticket_id},
        )

    def matching(self, terms: Sequence[tuple[str, bool]]) -> ColumnElement[bool]:
        phrases = [
            '"' + term.replace('"', '""') + '"' + ("*" if prefix else "") for term, prefix in terms
        ]
        match = text("SELECT rowid FROM ticket_search WHERE ticket_search MATCH :match").bindparams(
            match=" AND ".join(phrases)
        )
        return col(Ticket.id).in_(match.columns(column("rowid", Integer)))

    async def unindexed(self, session: AsyncSession, *, after_id: int, limit: int) -> list[int]:
        found = await session.execute(_missing_query("rowid", after_id, limit))
        return [row[0] for row in found.all()]


def _lexeme(term: str, prefix: bool) -> str:
    quoted = "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"
    return quoted + (":*" if prefix else "")


class PostgresSearch:
    """``ticket_search(ticket_id, document tsvector)`` with a GIN index."""

    async def forget_replaced(self, session: AsyncSession) -> None:
        # An update writes a new row version; the old one is never read again, and neither
        # pg_dump nor a restore carries it (VACUUM reclaims its space).
        return None

    _terms = bindparam("terms", type_=ARRAY(Text))

    async def add(self, session: AsyncSession, *, ticket_id: int, terms: Iterable[str]) -> None:
        words = sorted(_clean(terms))
        if not words:
            return
        await session.execute(
            text(
                "INSERT INTO ticket_search (ticket_id, document) "
                "VALUES (:id, array_to_tsvector(:terms)) ON CONFLICT (ticket_id) DO UPDATE "
                "SET document = ticket_search.document || excluded.document"
            ).bindparams(self._terms),
            {"terms": words, "id": ticket_id},
        )

    async def replace(self, session: AsyncSession, *, ticket_id: int, terms: Iterable[str]) -> None:
        await session.execute(
            text(
                "INSERT INTO ticket_search (ticket_id, document) "
                "VALUES (:id, array_to_tsvector(:terms)) ON CONFLICT (ticket_id) DO UPDATE "
                "SET document = excluded.document"
            ).bindparams(self._terms),
            {"terms": sorted(_clean(terms)), "id": ticket_id},
        )

    def matching(self, terms: Sequence[tuple[str, bool]]) -> ColumnElement[bool]:
        query = " & ".join(_lexeme(term, prefix) for term, prefix in terms)
        match = text(
            "SELECT ticket_id FROM ticket_search WHERE document @@ CAST(:match AS tsquery)"
        ).bindparams(match=query)
        return col(Ticket.id).in_(match.columns(column("ticket_id", Integer)))

    async def unindexed(self, session: AsyncSession, *, after_id: int, limit: int) -> list[int]:
        found = await session.execute(_missing_query("ticket_id", after_id, limit))
        return [row[0] for row in found.all()]


def index_for(dialect: str) -> SearchIndex:
    return SqliteSearch() if dialect == "sqlite" else PostgresSearch()


async def session_index(session: AsyncSession) -> SearchIndex:
    """The implementation for the session's database."""
    connection = await session.connection()
    return index_for(connection.dialect.name)


async def ticket_document(session: AsyncSession, *, ticket_id: int) -> tuple[str, ...]:
    """The texts and identifiers a ticket's document is made of (to rebuild it): the
    identifiers first, then name, subject and every message."""
    found = await session.execute(
        select(Ticket, col(Customer.email))
        .join(Customer, col(Customer.id) == col(Ticket.customer_id))
        .where(col(Ticket.id) == ticket_id)
    )
    ticket, email = found.one()
    bodies = await session.execute(
        select(col(Message.body))
        .where(col(Message.ticket_id) == ticket_id)
        .order_by(col(Message.id))
    )
    return (
        ticket.reference,
        ticket.order_number or "",
        email,
        ticket.customer_name,
        ticket.subject,
        *bodies.scalars().all(),
    )


def document_terms(document: Sequence[str]) -> set[str]:
    """All index terms of a ``ticket_document``. Blocking (Sudachi)."""
    reference, order_number, email, name, *texts = document
    return identifier_terms(
        reference=reference, order_number=order_number, email=email, name=name
    ) | text_terms(name, *texts)
