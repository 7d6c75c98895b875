"""Tickets: one command core behind the forms, the API, mail and (next) the agents' console.

- ``labels``: every Japanese label of kinds, statuses, categories, photo fields, authors.
- ``rules``: what a submission must hold, limits, validation with Japanese messages.
- ``text``: cleaning short fields and long text; names that never become links.
- ``addresses``: one validation and normal form of e-mail addresses (``normalize_address``).
- ``commands``: changes as data (``SetStatus``, ``Assign``, ``SetPriority``, ``AddNote``,
  ``Reply``, ``AcceptMessage``) and the ``Actor`` who makes them through a channel.
- ``access``: the ``Signer`` and what it signs: customer tokens, agent keys, photo tokens,
  signed reply addresses.
- ``urls``: every ticket URL, for routes, pages and mails.
- ``store``: queries over a session the caller opened.
- ``notify``: what mail each change queues; every customer mail threaded and redacted.
- ``csat``: satisfaction surveys: the signed links of a resolution mail, the answers.
- ``redact``: nothing agent-only (links, keys, addresses, quoted notices) reaches a customer.
- ``service``: the use cases (``submit``, ``add_customer_message``, ``apply``).
"""

from __future__ import annotations

from helpdesk.tickets.access import Signer, TicketAccess
from helpdesk.tickets.addresses import AddressError, is_email_address, normalize_address
from helpdesk.tickets.commands import (
    AcceptMessage,
    Actor,
    ActorRole,
    AddNote,
    Assign,
    Channel,
    Command,
    MarkSpam,
    Reply,
    SetPriority,
    SetStatus,
)
from helpdesk.tickets.labels import (
    AUTHOR_LABELS,
    FIELD_LABELS,
    INQUIRY_CATEGORIES,
    KIND_LABELS,
    PHOTO_FIELDS,
    STATUS_LABELS,
)
from helpdesk.tickets.rules import (
    MAX_DESCRIPTION,
    PHOTO_KINDS,
    Submission,
    Validation,
    missing_photos,
    subject_for,
    today_in_japan,
    validate_message,
    validate_submission,
)
from helpdesk.tickets.service import ApplyResult, SubmissionConflict, TicketService, version_of
from helpdesk.tickets.text import clean_line, clean_text, name_from_mail
from helpdesk.tickets.urls import TicketUrls

__all__ = [
    "AUTHOR_LABELS",
    "FIELD_LABELS",
    "INQUIRY_CATEGORIES",
    "KIND_LABELS",
    "MAX_DESCRIPTION",
    "PHOTO_FIELDS",
    "PHOTO_KINDS",
    "STATUS_LABELS",
    "AcceptMessage",
    "Actor",
    "ActorRole",
    "AddNote",
    "AddressError",
    "ApplyResult",
    "Assign",
    "Channel",
    "Command",
    "MarkSpam",
    "Reply",
    "SetPriority",
    "SetStatus",
    "Signer",
    "Submission",
    "SubmissionConflict",
    "TicketAccess",
    "TicketService",
    "TicketUrls",
    "Validation",
    "clean_line",
    "clean_text",
    "is_email_address",
    "missing_photos",
    "name_from_mail",
    "normalize_address",
    "subject_for",
    "today_in_japan",
    "validate_message",
    "validate_submission",
    "version_of",
]
