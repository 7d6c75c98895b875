"""Where personal data lives, and what happens to each place: export, erasure, retention.

Every column of every table in ``helpdesk.models`` is declared here with its ``Handling``;
``tests/privacy/test_inventory.py`` fails when a table or column is added to the models
without a declaration (or a declaration names a column that does not exist). Files and logs
are declared in ``FILES``.

The erasure (``helpdesk.privacy.erasure``) and the export (``helpdesk.privacy.export``)
follow these declarations; their tests check the result against them.

What an erasure does, in short (the details are in each ``Place.erasure``):

- the customer's **tickets stay as anonymous rows** (kind, status, category, priority,
  dates, assignee, late flag, satisfaction rating): the shop's counts stay true, and nothing
  in them names the person. Their name, order number, subject, variant, arrival day,
  submission keys and link nonce are replaced or removed;
- the customer's **messages, photos (rows), mails (outbox and inbound) are deleted**, and
  a photo *file* too when no other attachment and no unsent mail still uses its digest;
- the **customer row stays as an anonymous placeholder** (``erased-<id>@erased.invalid``),
  so that the tickets keep their foreign key and repeat counts stay possible;
- the **audit trail of the tickets stays** (event kinds and times) with actors who are not
  agents and every event's data removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Handling(StrEnum):
    """What a column holds and what an erasure does with it."""

    #: Not personal data (ids, states, counts, times, hashes of secrets).
    none = "none"
    #: Personal data removed by an erasure: the value is replaced by a placeholder or NULL.
    erased = "erased"
    #: Personal data in a row that an erasure deletes as a whole.
    deleted = "deleted"
    #: Masked when written (``helpdesk.privacy.masking``) and tied to no customer: kept
    #: until the retention period ends (``helpdesk.privacy.retention``).
    masked = "masked"
    #: An agent's data (staff): kept while the agent's account exists; agents are removed
    #: by an admin (``main.py agent remove``), their row kept for the audit trail's meaning.
    staff = "staff"


@dataclass(frozen=True, slots=True)
class Place:
    """A table: how its rows are found for one customer, and what happens to each column."""

    table: str
    columns: dict[str, Handling]
    #: Which rows belong to a customer (how the erasure and the export find them).
    rows: str
    #: What the export puts in the customer's copy.
    export: str
    #: What the erasure does.
    erasure: str
    #: The retention rule (``data/shop.toml`` [retention]), if any.
    retention: str = ""

    def columns_with(self, *handlings: Handling) -> list[str]:
        return [name for name, handling in self.columns.items() if handling in handlings]


@dataclass(frozen=True, slots=True)
class FilePlace:
    """Personal data outside the database: files and logs."""

    name: str
    location: str
    export: str
    erasure: str
    retention: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


N, E, D, M, S = Handling.none, Handling.erased, Handling.deleted, Handling.masked, Handling.staff

PLACES: tuple[Place, ...] = (
    Place(
        "customer",
        {"id": N, "email": E, "name": E, "created_at": N},
        rows="the row of the customer's address",
        export="address, name, first contact",
        erasure="email becomes erased-<id>@erased.invalid, name 削除済み (the row stays for "
        "the tickets' foreign key)",
    ),
    Place(
        "ticket",
        {
            "id": N,
            "reference": N,
            "token_nonce": E,
            "submission_key": E,
            "submission_fingerprint": E,
            "kind": N,
            "status": N,
            "priority": N,
            "customer_id": N,
            "customer_name": E,
            "assignee_id": N,
            "order_number": E,
            "arrived_on": E,
            "late": N,
            "desired_variant": E,
            "category": N,
            "subject": E,
            "first_reply_due_at": N,
            "first_replied_at": N,
            "merged_into_id": N,
            "last_customer_at": N,
            "last_replied_at": N,
            "spam": N,
            "created_at": N,
            "updated_at": N,
        },
        rows="customer_id",
        export="every ticket: reference, kind, status, category, name, order number, "
        "arrival day, variant, subject, times",
        erasure="anonymized in place: name and subject become 削除済み, order number, "
        "variant, arrival day and submission keys NULL, a new link nonce (old links die)",
        retention="closed tickets anonymized the same way after tickets_anonymized_after_days",
    ),
    Place(
        "message",
        {
            "id": N,
            "ticket_id": N,
            "author": D,
            "author_name": D,
            "body": D,
            "submission_key": D,
            "submission_fingerprint": D,
            "trust": D,
            "sender": D,
            "mail_id": D,
            "created_at": D,
        },
        rows="ticket_id of the customer's tickets, and sender = the customer's address on "
        "other tickets",
        export="every message the customer may see (internal notes are agents' work, not "
        "the customer's data: left out)",
        erasure="deleted",
    ),
    Place(
        "attachment",
        {
            "id": N,
            "ticket_id": N,
            "message_id": N,
            "field": D,
            "digest": D,
            "thumb_digest": D,
            "content_type": D,
            "size": D,
            "width": D,
            "height": D,
            "filename": D,
            "created_at": D,
        },
        rows="ticket_id of the customer's tickets, message_id of their messages elsewhere",
        export="each photo's file in photos/, described in the JSON",
        erasure="deleted; the media file (photo and thumbnail) too unless another "
        "attachment or an unsent mail still uses the digest",
        retention="photos deleted photos_after_close_days after the ticket closed",
    ),
    Place(
        "ticket_event",
        {"id": N, "ticket_id": N, "kind": N, "actor": E, "data": E, "created_at": N},
        rows="ticket_id of the customer's tickets; actor = the address (anywhere)",
        export="not exported (the agents' audit trail)",
        erasure="on the customer's tickets: data emptied, actors other than agents become "
        "削除済み; events whose actor is the address (other tickets, or none) deleted",
    ),
    Place(
        "csat_response",
        {
            "id": N,
            "ticket_id": N,
            "resolution": N,
            "agent_id": N,
            "kind": N,
            "rating": N,
            "comment": E,
            "mailed": N,
            "created_at": N,
            "answered_at": N,
        },
        rows="ticket_id of the customer's tickets",
        export="rating and comment of each survey",
        erasure="comment NULL (the rating stays: an anonymous count)",
    ),
    Place(
        "outbox",
        {
            "id": N,
            "ticket_id": N,
            "kind": D,
            "to_address": D,
            "subject": D,
            "text": D,
            "html": D,
            "message_id": D,
            "reply_to": D,
            "in_reply_to": D,
            "references": D,
            "attachments": D,
            "automatic": D,
            "origin": D,
            "status": D,
            "attempts": D,
            "next_attempt_at": D,
            "lease_until": D,
            "last_error": D,
            "sent_at": D,
            "dead_at": D,
            "dead_reported_at": D,
            "created_at": D,
        },
        rows="ticket_id of the customer's tickets, and to_address = the address",
        export="not exported (copies of what the messages say)",
        erasure="deleted (mail still queued to the customer is not sent)",
        retention="address, subject and text of sent mail emptied after outbox_sent_days "
        "(the Message-ID stays, for threading); the 'erased' mail is emptied once sent",
    ),
    Place(
        "inbound_mail",
        {
            "id": N,
            "raw": D,
            "envelope_from": D,
            "envelope_to": D,
            "message_id": D,
            "from_address": D,
            "subject": D,
            "status": D,
            "outcome": D,
            "ticket_id": N,
            "attempts": D,
            "next_attempt_at": D,
            "received_at": D,
        },
        rows="ticket_id of the customer's tickets, and from_address = the address",
        export="not exported (the messages hold what the mails said)",
        erasure="deleted",
        retention="raw mail (and subject, envelope) emptied inbound_raw_days after it was "
        "processed; at once when it held a card number",
    ),
    Place(
        "faq_feedback",
        {"id": N, "entry_id": N, "helpful": N, "query": M, "created_at": N},
        rows="none: votes are anonymous (no address, no session)",
        export="not exported (tied to no one)",
        erasure="not needed: masked at write, tied to no one",
        retention="the query emptied after faq_queries_days (the vote stays)",
    ),
    Place(
        "faq_gap",
        {"id": N, "query": M, "confidence": N, "best_entry_id": N, "created_at": N},
        rows="none: unanswered queries are anonymous",
        export="not exported (tied to no one)",
        erasure="not needed: masked at write, tied to no one",
        retention="deleted after faq_queries_days",
    ),
    Place(
        "held_reply",
        {
            "id": N,
            "ticket_id": N,
            "agent_id": N,
            "commands": D,
            "created_at": N,
            "released_at": N,
        },
        rows="ticket_id of the customer's tickets",
        export="not exported (an agent's reply not sent; what was sent is a message)",
        erasure="deleted",
    ),
    Place(
        "pending_reply",
        {
            "id": N,
            "ticket_id": N,
            "agent_id": N,
            "body": D,
            "status": N,
            "channel": N,
            "state": N,
            "submission_key": D,
            "decided_by": S,
            "decided_at": N,
            "edited": N,
            "reason": D,
            "created_at": N,
        },
        rows="ticket_id of the customer's tickets",
        export="not exported (what was approved and sent is a message)",
        erasure="deleted",
    ),
    Place(
        "saved_reply",
        {
            "id": N,
            "title": N,
            "body": N,
            "category": N,
            "updated_by": S,
            "created_at": N,
            "updated_at": N,
        },
        rows="none: the shop's templates, with placeholders for customers' data",
        export="not exported (the shop's content)",
        erasure="not needed: no customer's data",
    ),
    Place(
        "rate_counter",
        {"key": D, "window_start": N, "hits": N, "expires_at": N},
        rows="key ending with the address (limits counted per address); per client address "
        "otherwise (an IP address, tied to no customer)",
        export="not exported (counters)",
        erasure="the address's counters deleted",
        retention="every counter deleted when its window ends (the leader prunes them)",
    ),
    Place(
        "login_failure",
        {"key": D, "failures": N, "last_at": N},
        rows="key account:<the address typed at the agents' login>, or client:<ip>",
        export="not exported (counters)",
        erasure="the address's failures deleted",
        retention="deleted when the throttle forgets them (the leader prunes them)",
    ),
    Place(
        "leader_heartbeat",
        {"name": N, "holder": N, "since": N, "heartbeat_at": N},
        rows="none: which process runs the background work",
        export="not exported",
        erasure="not needed: no personal data",
    ),
    Place(
        "job_run",
        {
            "id": N,
            "name": N,
            "day": N,
            "holder": N,
            "started_at": N,
            "finished_at": N,
            "error": N,
            "attempts": N,
        },
        rows="none: the daily jobs' runs",
        export="not exported",
        erasure="not needed: no personal data",
    ),
    Place(
        "ticket_presence",
        {"id": N, "ticket_id": N, "agent_id": N, "kind": N, "last_seen": N},
        rows="none: which agent has a ticket open",
        export="not exported",
        erasure="not needed: no personal data",
    ),
    Place(
        "faq_revision",
        {
            "id": N,
            "kind": N,
            "key": N,
            "status": N,
            "data": M,
            "changes": N,
            "agent_id": N,
            "agent_name": S,
            "source": N,
            "created_at": N,
        },
        rows="none: the shop's FAQ as admins edit it",
        export="not exported (the shop's content)",
        erasure="not needed: a draft made from a ticket has addresses, phone and order "
        "numbers masked when it is made, and an admin edits it before it is published",
    ),
    Place(
        "faq_kb_version",
        {"id": N, "version": N, "updated_at": N},
        rows="none",
        export="not exported",
        erasure="not needed: no personal data",
    ),
    Place(
        "faq_daily",
        {"day": N, "asked": N, "answered": N, "suggested": N},
        rows="none: counts",
        export="not exported",
        erasure="not needed: counts",
    ),
    Place(
        "insight_day",
        {"day": N, "rolled_at": N},
        rows="none: counts",
        export="not exported",
        erasure="not needed: counts",
    ),
    Place(
        "insight_tickets",
        {
            "day": N,
            "kind": N,
            "created": N,
            "sent_after_suggestions": N,
            "replied": N,
            "replied_late": N,
        },
        rows="none: counts",
        export="not exported",
        erasure="not needed: counts",
    ),
    Place(
        "insight_reply_time",
        {"day": N, "kind": N, "minutes": N, "count": N},
        rows="none: counts",
        export="not exported",
        erasure="not needed: counts",
    ),
    Place(
        "insight_gap",
        {"day": N, "key": M, "count": N, "sample": M},
        rows="none: unanswered queries of a day, grouped (from faq_gap, masked)",
        export="not exported (tied to no one)",
        erasure="not needed: masked at write, tied to no one",
        retention="deleted after faq_queries_days, with the queries",
    ),
    Place(
        "agent",
        {
            "id": N,
            "email": S,
            "name": S,
            "role": N,
            "password_hash": S,
            "password_token_hash": N,
            "password_token_expires_at": N,
            "session_version": N,
            "disabled_at": N,
            "removed_at": N,
            "needs_approval": N,
            "created_at": N,
        },
        rows="staff, not customers",
        export="not part of a customer's copy",
        erasure="not erased with a customer; agents are removed by an admin",
    ),
    Place(
        "privacy_request",
        {
            "id": N,
            "kind": N,
            "state": N,
            "customer_id": N,
            "ticket_id": N,
            "due_at": N,
            "preview": N,
            "progress": N,
            "cursor": N,
            "pending_digests": N,
            "attempts": N,
            "export_file": N,
            "expires_at": N,
            "started_at": N,
            "finished_at": N,
            "created_at": N,
        },
        rows="customer_id (ids and counts only: no personal data)",
        export="not exported",
        erasure="kept: the proof the request was carried out",
    ),
    Place(
        "privacy_audit",
        {
            "id": N,
            "action": N,
            "actor": N,
            "subject_hash": N,
            "customer_id": N,
            "ticket_id": N,
            "request_id": N,
            "data": N,
            "created_at": N,
        },
        rows="customer_id, subject_hash (an HMAC of the address, no address)",
        export="not exported",
        erasure="kept: holds no personal data",
    ),
)

FILES: tuple[FilePlace, ...] = (
    FilePlace(
        "search_index",
        "the ticket_search table (FTS5 on SQLite, tsvector on PostgreSQL; outside the models): "
        "each ticket's reference, order number, address, name and the words of its messages",
        export="not exported (derived from the tickets and messages)",
        erasure="an erased or anonymized ticket's document keeps its reference only; other "
        "tickets the address wrote on are indexed again without its messages",
        retention="with the tickets (tickets_anonymized_after_days)",
    ),
    FilePlace(
        "media",
        "var/media (HELPDESK_MEDIA_DIR): cleaned photos and thumbnails, named by content hash",
        export="the customer's photos, in photos/ of the ZIP",
        erasure="deleted when no attachment and no unsent mail still uses the digest "
        "(two tickets sharing a photo share its file)",
        retention="with the attachment rows (photos_after_close_days)",
    ),
    FilePlace(
        "mail_files",
        "var/mail/*.eml: outgoing mail written to files when no SMTP host is set",
        export="not exported",
        erasure="every file naming the customer's address is deleted",
        retention=".eml files older than outbox_sent_days deleted",
    ),
    FilePlace(
        "exports",
        "var/exports/*.zip: customers' copies waiting to be downloaded",
        export="this is the export",
        erasure="the customer's copies are deleted",
        retention="deleted when the download link expires (export_link_days)",
    ),
    FilePlace(
        "logs",
        "the process's log (stderr, journald): the app's loggers and the access log",
        export="not exported",
        erasure="nothing to erase: log records are masked by helpdesk.privacy.masking."
        "MaskingFilter (addresses, phone, card, My Number, order numbers), and access log "
        "paths carry no tokens (helpdesk.security.loggable_path)",
        notes=("log files kept by the system are rotated by it (journald, logrotate)",),
    ),
)


def place(table: str) -> Place:
    for item in PLACES:
        if item.table == table:
            return item
    raise KeyError(table)
