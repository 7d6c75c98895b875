"""Every URL of a ticket, built in one place: routes, pages and mails ask for them here.

Methods give paths (for links within the site); ``absolute`` and the ``*_url`` methods add
the configured base URL (for mail). The customer's links carry the ticket's token; the
agents' links lead to the console, which asks them to log in (no key in any link).
"""

from __future__ import annotations

from datetime import date

from helpdesk.agents.urls import ConsoleUrls
from helpdesk.models import Ticket
from helpdesk.photos import StoredPhoto
from helpdesk.tickets.access import TicketAccess


class TicketUrls:
    def __init__(self, base_url: str, access: TicketAccess) -> None:
        self.base_url = base_url.rstrip("/")
        self.access = access
        self.console = ConsoleUrls(base_url)

    def absolute(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # -- the customer's pages -------------------------------------------------------------

    def status(self, ticket: Ticket, *, sent: bool = False) -> str:
        """The status page; ``sent`` shows "sent" and scrolls to the message form."""
        path = f"/t/{ticket.reference}?token={self.access.access_token(ticket)}"
        return f"{path}&sent=1#reply" if sent else path

    def submitted(self, ticket: Ticket) -> str:
        return f"/t/{ticket.reference}/submitted?token={self.access.access_token(ticket)}"

    def messages(self, ticket: Ticket) -> str:
        """Where the status page's message form posts."""
        return f"/t/{ticket.reference}/messages?token={self.access.access_token(ticket)}"

    def photo(self, ticket: Ticket, digest: str) -> str:
        return f"/t/{ticket.reference}/photos/{digest}?token={self.access.access_token(ticket)}"

    def kept_thumb(self, photo: StoredPhoto) -> str:
        """The thumbnail of a photo a form keeps across a retry (no ticket yet)."""
        digest = photo.thumb_digest
        return f"/photos/kept/{digest}?sig={self.access.kept_thumb_signature(digest)}"

    def status_url(self, ticket: Ticket) -> str:
        return self.absolute(self.status(ticket))

    def csat(
        self, ticket: Ticket, resolution: int, expires_on: date, rating: str | None = None
    ) -> str:
        """A satisfaction survey's page; ``rating`` ("good", "improve") is the choice the
        mail's link preselects. Opening it records nothing (mail scanners open links)."""
        signature = self.access.csat_signature(ticket, resolution, expires_on)
        path = f"/t/{ticket.reference}/csat/{resolution}?e={expires_on:%Y%m%d}&s={signature}"
        return f"{path}&v={rating}" if rating else path

    # -- the agents' pages ----------------------------------------------------------------

    def agent(self, ticket: Ticket) -> str:
        """The ticket in the console (login required)."""
        return self.console.ticket(ticket.reference)

    def agent_photo(self, ticket: Ticket, digest: str) -> str:
        return self.console.ticket_photo(ticket.reference, digest)

    def agent_url(self, ticket: Ticket) -> str:
        """The link to the ticket in the agents' mails: the console, behind login."""
        return self.absolute(self.agent(ticket))
