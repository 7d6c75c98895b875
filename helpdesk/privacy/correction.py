"""Correcting a customer's name or address (the policy's "right to rectify"): an admin's
audited action.

The customer row and the name on each of their tickets change together; the privacy audit
log records who did it, which fields changed and an HMAC of the old and new address, never
the values. Mail already sent is not rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.models import Customer, Ticket
from helpdesk.privacy import audit
from helpdesk.privacy.erasure import is_erased
from helpdesk.tickets.addresses import AddressError, normalize_address

MAX_NAME = 100


class CorrectionError(ValueError):
    """A correction that cannot be made; the message is Japanese, for the form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Correction:
    customer: Customer
    fields: tuple[str, ...]


async def correct(
    sessions: async_sessionmaker[AsyncSession],
    customer_id: int,
    *,
    name: str | None,
    email: str | None,
    agent_id: int,
    secret_key: str,
) -> Correction:
    """Set the name and/or address (None: unchanged). Raises ``CorrectionError``,
    ``LookupError`` for an unknown customer."""
    async with sessions() as session, session.begin():
        customer = await session.get(Customer, customer_id, with_for_update=True)
        if customer is None or is_erased(customer):
            raise LookupError(customer_id)
        changed: list[str] = []
        old_subject = audit.subject_hash(secret_key, customer.email)
        if name is not None:
            name = " ".join(name.split())
            if not name:
                raise CorrectionError("name", "お名前を入力してください。")
            if len(name) > MAX_NAME:
                raise CorrectionError("name", f"お名前は{MAX_NAME}文字以内で入力してください。")
            if name != customer.name:
                customer.name = name
                await session.execute(
                    update(Ticket)
                    .where(col(Ticket.customer_id) == customer_id)
                    .values(customer_name=name)
                )
                changed.append("name")
        if email is not None:
            try:
                address = normalize_address(email)
            except AddressError:
                raise CorrectionError("email", "メールアドレスの形式をご確認ください。") from None
            if address != customer.email:
                taken = await session.execute(
                    select(col(Customer.id)).where(col(Customer.email) == address)
                )
                if taken.first() is not None:
                    raise CorrectionError(
                        "email",
                        "このメールアドレスは別のお客様の記録で使われています。",
                    )
                customer.email = address
                changed.append("email")
        if changed:
            audit.record(
                session,
                "correction",
                actor=f"agent:{agent_id}",
                subject=old_subject,
                customer_id=customer_id,
                data={
                    "fields": changed,
                    "new_subject": audit.subject_hash(secret_key, customer.email),
                },
            )
    return Correction(customer, tuple(changed))
