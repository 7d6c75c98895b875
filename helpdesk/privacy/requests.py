"""Customers' requests about their data: asked on /privacy, confirmed by a mailed link.

1. ``ask``: someone types an address and chooses a copy or an erasure. The page answers the
   same whatever the address (nothing tells a stranger whether it is known); the answer
   goes by mail, through the outbox: a signed confirmation link if the address is a
   customer's, else a short note that nothing is held under it.
2. ``confirm``: the link (signed for this purpose, this customer, this address and a time
   limit; its query string is never logged) opens a page with a button; pressing it (a
   POST: mail scanners open links) makes the request: a ``PrivacyRequest`` and a ticket of
   its own (category ``privacy``) that agents follow, due the shop policy's
   ``deletion_days`` later. Confirming twice gives the one request.
3. A copy is built in the background (``build_exports``) and mailed as a signed download
   link that expires (``export_link_days`` in data/shop.toml [retention]).
   An erasure waits for the agents (console: "今すぐ実行"), and is carried out by ``purge``
   at the latest one day before it is due, so the policy's promise holds; the customer is
   mailed when it is done (the policy: "You will receive an email confirmation").
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from faq.policy import ShopPolicy
from helpdesk.db import as_utc, utcnow
from helpdesk.files import private_dir
from helpdesk.models import (
    Customer,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestState,
    Ticket,
    TicketKind,
)
from helpdesk.photos import PhotoStore
from helpdesk.privacy import audit, export
from helpdesk.privacy.erasure import Erasure, is_erased
from helpdesk.tickets import Submission, TicketService
from helpdesk.tickets.addresses import AddressError, normalize_address

log = logging.getLogger(__name__)

#: How long a confirmation link works.
CONFIRM_HOURS = 24
#: The ticket category of privacy requests (labels: 個人情報について).
CATEGORY = "privacy"
ORIGIN_PREFIX = "client:"

SUBJECTS = {
    PrivacyRequestKind.export: "個人情報の開示(写しの送付)のご依頼",
    PrivacyRequestKind.erasure: "個人情報の削除のご依頼",
}


def _b64(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


class PrivacyRequests:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tickets: TicketService,
        erasure: Erasure,
        photos: PhotoStore,
        *,
        secret_key: str,
        exports_dir: Path,
        policy: Callable[[], ShopPolicy],
        export_link_days: Callable[[], int],
    ) -> None:
        self.sessions = sessions
        self.tickets = tickets
        self.erasure = erasure
        self.photos = photos
        self.secret_key = secret_key
        self.signer = tickets.access.signer
        self.exports_dir = exports_dir
        self._policy = policy
        self._export_link_days = export_link_days

    # -- signed links -------------------------------------------------------------------------

    def confirm_token(self, kind: PrivacyRequestKind, customer: Customer, expires: datetime) -> str:
        """``kind.customer.expiry.signature``, signed over the address too: a link stops
        working once the address is corrected or erased."""
        stamp = f"{int(expires.timestamp())}"
        value = f"{kind.value}.{customer.id}.{stamp}.{customer.email.lower()}"
        return f"{kind.value}.{customer.id}.{stamp}.{self.signer.sign('privacy-confirm', value)}"

    async def check_token(self, token: str | None) -> tuple[PrivacyRequestKind, Customer] | None:
        """The request kind and customer a valid, unexpired confirmation link names."""
        try:
            kind_text, customer_text, stamp, signature = str(token or "").split(".", 3)
            kind = PrivacyRequestKind(kind_text)
            customer_id, expires = int(customer_text), int(stamp)
        except ValueError:
            return None
        if expires < utcnow().timestamp():
            return None
        async with self.sessions() as session:
            customer = await session.get(Customer, customer_id)
        if customer is None or is_erased(customer):
            return None
        value = f"{kind.value}.{customer.id}.{stamp}.{customer.email.lower()}"
        if not self.signer.same(self.signer.sign("privacy-confirm", value), signature):
            return None
        return kind, customer

    def download_token(self, request: PrivacyRequest) -> str:
        assert request.expires_at is not None and request.export_file is not None
        stamp = int(as_utc(request.expires_at).timestamp())
        value = f"{request.id}.{stamp}.{request.export_file}"
        return f"{request.id}.{stamp}.{self.signer.sign('privacy-export', value)}"

    async def download(self, token: str | None) -> Path | None:
        """The ZIP a valid, unexpired download link names, if it still exists."""
        try:
            request_text, stamp, signature = str(token or "").split(".", 2)
            request_id, expires = int(request_text), int(stamp)
        except ValueError:
            return None
        if expires < utcnow().timestamp():
            return None
        async with self.sessions() as session:
            request = await session.get(PrivacyRequest, request_id)
        if request is None or request.export_file is None or request.expires_at is None:
            return None
        if int(as_utc(request.expires_at).timestamp()) != expires:
            return None
        value = f"{request.id}.{stamp}.{request.export_file}"
        if not self.signer.same(self.signer.sign("privacy-export", value), signature):
            return None
        path = self.exports_dir / request.export_file
        return path if path.is_file() else None

    # -- asking -------------------------------------------------------------------------------

    async def ask(self, email: str, kind: PrivacyRequestKind, *, client: str | None) -> None:
        """Mail the address its confirmation link, or a note that nothing is held under it.
        Says nothing to the caller either way."""
        try:
            address = normalize_address(email)
        except AddressError:
            return
        origin = f"{ORIGIN_PREFIX}{client}" if client else None
        async with self.sessions() as session, session.begin():
            customer = (
                await session.execute(select(Customer).where(col(Customer.email) == address))
            ).scalar_one_or_none()
            notify = self.tickets.notify
            if customer is None or is_erased(customer):
                await notify.to_address(
                    session, "privacy_unknown", address, origin=origin, request_kind=kind.value
                )
                return
            expires = utcnow() + timedelta(hours=CONFIRM_HOURS)
            link = self.tickets.urls.absolute(
                f"/privacy/confirm?token={self.confirm_token(kind, customer, expires)}"
            )
            await notify.to_address(
                session,
                "privacy_confirm",
                address,
                origin=origin,
                request_kind=kind.value,
                customer=customer,
                confirm_url=link,
                hours=CONFIRM_HOURS,
            )
            audit.record(
                session,
                f"{kind.value}_asked",
                actor="customer",
                subject=audit.subject_hash(self.secret_key, address),
                customer_id=customer.id,
            )

    async def confirm(self, token: str | None, *, client: str | None) -> PrivacyRequest | None:
        """Make the request the link names (once: a second press finds the first)."""
        checked = await self.check_token(token)
        if checked is None:
            return None
        kind, customer = checked
        assert customer.id is not None
        async with self.sessions() as session:
            existing = (
                await session.execute(
                    select(PrivacyRequest).where(
                        col(PrivacyRequest.customer_id) == customer.id,
                        col(PrivacyRequest.kind) == kind.value,
                        col(PrivacyRequest.state).in_(
                            [PrivacyRequestState.pending.value, PrivacyRequestState.running.value]
                        ),
                    )
                )
            ).scalar_one_or_none()
        if existing is not None:
            return existing
        return await self.open_request(kind, customer, actor="customer", client=client)

    async def open_request(
        self,
        kind: PrivacyRequestKind,
        customer: Customer,
        *,
        actor: str,
        client: str | None = None,
    ) -> PrivacyRequest:
        """A request with a ticket of its own, due ``deletion_days`` from now."""
        assert customer.id is not None
        days = self._policy().deletion_days
        due = utcnow() + timedelta(days=days)
        description = (
            f"{SUBJECTS[kind]}がありました(メールの確認リンクでご本人の操作を確認済み)。\n"
            f"期限: 受付から{days}日以内(プライバシーポリシー)。"
        )
        ticket, _created = await self.tickets.submit(
            Submission(
                kind=TicketKind.inquiry,
                name=customer.name,
                email=customer.email,
                description=description,
                category=CATEGORY,
            ),
            {},
            late=False,
            channel="privacy",
            confirm=False,
            client=client,
            subject=SUBJECTS[kind],
        )
        if kind is PrivacyRequestKind.erasure:
            request = await self.erasure.create(
                customer.id, due_at=due, actor=actor, ticket_id=ticket.id
            )
        else:
            async with self.sessions() as session, session.begin():
                request = PrivacyRequest(
                    kind=kind, customer_id=customer.id, ticket_id=ticket.id, due_at=due
                )
                session.add(request)
                await session.flush()
                audit.record(
                    session,
                    "export_requested",
                    actor=actor,
                    subject=audit.subject_hash(self.secret_key, customer.email),
                    customer_id=customer.id,
                    ticket_id=ticket.id,
                    request_id=request.id,
                )
        async with self.sessions() as session, session.begin():
            await self.tickets.notify.to_address(
                session,
                "privacy_received",
                customer.email,
                automatic=False,
                request_kind=kind.value,
                customer=customer,
                reference=ticket.reference,
                due_at=due,
            )
        return request

    # -- the copy -----------------------------------------------------------------------------

    async def build_exports(self) -> int:
        """Build every pending copy and mail its link; how many were built."""
        async with self.sessions() as session:
            ids = [
                request_id
                for request_id in (
                    await session.execute(
                        select(col(PrivacyRequest.id)).where(
                            col(PrivacyRequest.kind) == PrivacyRequestKind.export.value,
                            col(PrivacyRequest.state).in_(
                                [
                                    PrivacyRequestState.pending.value,
                                    PrivacyRequestState.running.value,
                                ]
                            ),
                        )
                    )
                ).scalars()
                if request_id is not None
            ]
        for request_id in ids:
            await self.build_export(request_id)
        return len(ids)

    async def build_export(self, request_id: int) -> PrivacyRequest:
        async with self.sessions() as session, session.begin():
            request = await session.get(PrivacyRequest, request_id, with_for_update=True)
            assert request is not None and request.kind is PrivacyRequestKind.export
            if request.state is PrivacyRequestState.done:
                return request
            request.state = PrivacyRequestState.running
            request.attempts += 1
            request.started_at = request.started_at or utcnow()
            customer = await session.get(Customer, request.customer_id)
            assert customer is not None and customer.id is not None
        data = await export.collect(self.sessions, self.tickets, customer.id)
        name = f"{secrets.token_urlsafe(24)}.zip"
        private_dir(self.exports_dir)
        await asyncio.to_thread(export.write_zip, self.exports_dir / name, data, self.photos)
        async with self.sessions() as session, session.begin():
            request = await session.get(PrivacyRequest, request_id, with_for_update=True)
            assert request is not None
            request.export_file = name
            request.expires_at = utcnow() + timedelta(days=self._export_link_days())
            request.state = PrivacyRequestState.done
            request.finished_at = utcnow()
            request.progress = json.dumps(
                {"tickets": len(data.document["tickets"]), "photos": len(data.photos)}
            )
            url = self.tickets.urls.absolute(
                f"/privacy/export?token={self.download_token(request)}"
            )
            await self.tickets.notify.to_address(
                session,
                "privacy_export",
                customer.email,
                automatic=False,
                customer=customer,
                download_url=url,
                expires_at=request.expires_at,
            )
            audit.record(
                session,
                "export_sent",
                actor="system",
                subject=audit.subject_hash(self.secret_key, customer.email),
                customer_id=customer.id,
                ticket_id=request.ticket_id,
                request_id=request.id,
                data=json.loads(request.progress),
            )
        return request

    # -- the erasure --------------------------------------------------------------------------

    async def carry_out(self, request_id: int, *, actor: str) -> PrivacyRequest:
        """Carry out erasure ``request_id`` now and mail the customer that it is done (the
        policy: "You will receive an email confirmation as soon as it is done"). That mail
        names the address: the outbox removes its address and text once it is sent
        (``helpdesk.mail.outbox.SCRUBBED_WHEN_SENT``)."""
        async with self.sessions() as session:
            request = await session.get(PrivacyRequest, request_id)
            if request is None or request.kind is not PrivacyRequestKind.erasure:
                raise LookupError(request_id)
            customer = await session.get(Customer, request.customer_id)
            assert customer is not None
            address = None if is_erased(customer) else customer.email
        done = await self.erasure.run(request_id, actor=actor)
        if address is not None:
            async with self.sessions() as session, session.begin():
                await self.tickets.notify.to_address(
                    session, "privacy_erased", address, automatic=False
                )
        return done

    async def warn_nearing(self, *, days: int = 7) -> int:
        """Mail the agents the open requests due within ``days`` (the daily job calls it:
        one reminder a day while a request nears its deadline); how many were listed."""
        async with self.sessions() as session, session.begin():
            found = (
                await session.execute(
                    select(PrivacyRequest, Ticket)
                    .outerjoin(Ticket, col(Ticket.id) == col(PrivacyRequest.ticket_id))
                    .where(
                        col(PrivacyRequest.state).in_(
                            [PrivacyRequestState.pending.value, PrivacyRequestState.running.value]
                        ),
                        col(PrivacyRequest.due_at) <= utcnow() + timedelta(days=days),
                    )
                    .order_by(col(PrivacyRequest.due_at))
                )
            ).all()
            if not found:
                return 0
            nearing = [
                {
                    "id": request.id,
                    "kind_label": SUBJECTS[request.kind],
                    "reference": ticket.reference if ticket else "-",
                    "due_at": request.due_at,
                }
                for request, ticket in found
            ]
            await self.tickets.notify.tell_agents(
                session,
                None,
                "privacy_deadline",
                nearing=nearing,
                warn_days=days,
                deletion_days=self._policy().deletion_days,
                privacy_url=self.tickets.urls.absolute("/console/privacy"),
            )
        return len(nearing)

    async def erase_due(self, *, margin: timedelta = timedelta(days=1)) -> int:
        """Carry out every pending erasure due within ``margin`` (the policy's promise)."""
        async with self.sessions() as session:
            ids = [
                request_id
                for request_id in (
                    await session.execute(
                        select(col(PrivacyRequest.id)).where(
                            col(PrivacyRequest.kind) == PrivacyRequestKind.erasure.value,
                            col(PrivacyRequest.state) == PrivacyRequestState.pending.value,
                            col(PrivacyRequest.due_at) <= utcnow() + margin,
                        )
                    )
                ).scalars()
                if request_id is not None
            ]
        for request_id in ids:
            await self.carry_out(request_id, actor="system")
        return len(ids)
