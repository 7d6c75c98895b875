"""The privacy audit log: what was done about whose data, with no personal data in it.

A customer is named by id and by ``subject_hash``: an HMAC of the normalized address with
the app's secret key, so that the log can answer "was a request from this address carried
out?" for someone who knows the address, and reveals the address to nobody. ``data`` holds
counts and field names only (never values).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.models import PrivacyAudit


def subject_hash(secret_key: str, email: str) -> str:
    """HMAC-SHA256 of the address (trimmed, lower-cased) under the app's secret key."""
    normalized = email.strip().lower().encode()
    return hmac.new(
        secret_key.encode(), b"privacy-subject:" + normalized, hashlib.sha256
    ).hexdigest()


def record(
    session: AsyncSession,
    action: str,
    *,
    actor: str,
    subject: str | None = None,
    customer_id: int | None = None,
    ticket_id: int | None = None,
    request_id: int | None = None,
    data: Mapping[str, int | str | list[str]] | None = None,
) -> PrivacyAudit:
    """Add an entry in the caller's transaction. ``actor``: "agent:<id>", "customer",
    "system"; ``subject``: a ``subject_hash``; ``data``: counts and field names only."""
    entry = PrivacyAudit(
        action=action,
        actor=actor,
        subject_hash=subject,
        customer_id=customer_id,
        ticket_id=ticket_id,
        request_id=request_id,
        data=json.dumps(dict(data or {}), sort_keys=True),
    )
    session.add(entry)
    return entry
