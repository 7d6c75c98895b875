"""Who may open a ticket, and how: everything signed with the app's secret key.

One ``Signer`` makes every signature (HMAC-SHA256 over ``purpose:value``), so a token made
for one purpose never opens another. ``TicketAccess`` holds what is signed for tickets: the
customer's token, the agents' key, photos carried by a form across a retry, the signed
reply addresses that thread mail onto a ticket, and the links of satisfaction surveys.
Signatures are compared as bytes in constant time; a wrong, empty or odd (non-ASCII) token
opens nothing and raises nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import asdict
from datetime import date

from helpdesk.models import Ticket
from helpdesk.photos import StoredPhoto

_REPLY_ADDRESS = re.compile(
    r"^(?P<local>[^+@]+)\+(?P<reference>hd-\d{2}-\d+)\.(?P<signature>[a-z0-9_-]+)@(?P<domain>[^@]+)$"
)
# The signature part of a reply address: short enough for a mail address, still 72 bits.
_REPLY_SIGNATURE_LENGTH = 12


class Signer:
    """HMAC signatures of short values, one purpose at a time."""

    def __init__(self, secret_key: str) -> None:
        self._secret = secret_key.encode()

    def sign(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    @staticmethod
    def same(expected: str, given: str | None) -> bool:
        """Constant-time comparison of a signature we made with one we were given."""
        return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


class TicketAccess:
    """Customer tokens, agent keys, photo tokens and signed reply addresses of tickets."""

    def __init__(self, signer: Signer, *, support_address: str) -> None:
        self.signer = signer
        self.support_address = support_address

    # -- the customer's token and the agents' key -----------------------------------------

    def access_token(self, ticket: Ticket) -> str:
        """The customer's unguessable token; the reference alone opens nothing. Rotating the
        ticket's ``token_nonce`` revokes it (``TicketService.revoke_customer_link``)."""
        return self.signer.sign("ticket", f"{ticket.reference}.{ticket.token_nonce}")

    def check_token(self, ticket: Ticket, token: str | None) -> bool:
        return self.signer.same(self.access_token(ticket), token)

    def agent_key(self, ticket: Ticket) -> str:
        """The key the agents' links carried before the console (``/agent/t/...?key=``).

        It opens nothing any more (issue 7, #19: such links now only lead to the console's
        login), but mails sent before carry it and may be quoted back: it stays one of the
        ticket's ``agent_secrets``, removed from everything a customer receives.
        """
        return self.signer.sign("agent", ticket.reference)

    def agent_secrets(self, ticket: Ticket) -> tuple[str, str]:
        """What of this ticket must never reach its customer: the agent key and the
        agents' signed reply address (``redact.for_customer`` removes them)."""
        return self.agent_key(ticket), self.reply_address(ticket, agents=True)

    # -- photos carried across a retry ----------------------------------------------------

    def photo_token(self, photo: StoredPhoto) -> str:
        """A signed note of a photo already accepted, carried by the form across a retry."""
        payload = base64.urlsafe_b64encode(json.dumps(asdict(photo)).encode()).decode()
        return f"{payload}.{self.signer.sign('photo', payload)}"

    def photo_from_token(self, token: str | None) -> StoredPhoto | None:
        if not token or "." not in token:
            return None
        payload, signature = token.rsplit(".", 1)
        if not self.signer.same(self.signer.sign("photo", payload), signature):
            return None
        try:
            return StoredPhoto(**json.loads(base64.urlsafe_b64decode(payload.encode())))
        except (ValueError, TypeError):
            return None

    def kept_thumb_signature(self, thumb_digest: str) -> str:
        """Signs the thumbnail of a photo a form keeps, so the form can show it before there
        is a ticket; only that thumbnail, and only to whoever was given the form."""
        return self.signer.sign("kept-thumb", thumb_digest)

    def check_kept_thumb(self, thumb_digest: str, signature: str | None) -> bool:
        return self.signer.same(self.kept_thumb_signature(thumb_digest), signature)

    # -- satisfaction surveys -------------------------------------------------------------

    def csat_signature(self, ticket: Ticket, resolution: int, expires_on: date) -> str:
        """Signs a survey link: this ticket, this resolution (a ticket resolved again gets
        another), this last day. The rating is not signed: the customer may choose either."""
        return self.signer.sign("csat", f"{ticket.reference}.{resolution}.{expires_on:%Y%m%d}")

    def check_csat(
        self, ticket: Ticket, resolution: int, expires_on: date, signature: str | None
    ) -> bool:
        return self.signer.same(self.csat_signature(ticket, resolution, expires_on), signature)

    # -- signed reply addresses -----------------------------------------------------------

    def reply_address(self, ticket: Ticket, *, agents: bool = False) -> str:
        """``support+hd-26-00042.<signature>@shop``: replies to it thread onto the ticket.

        Mail to the support inbox carries another address (``...+hd-26-00042.a<signature>``)
        signed for agents: only replies to that one may carry commands and notes, so a
        customer who writes "From: agent" to their own reply address acts as no agent.
        """
        local, _, domain = self.support_address.partition("@")
        reference = ticket.reference.lower()
        role = "a" if agents else ""
        return f"{local}+{reference}.{self._reply_signature(role, reference)}@{domain}"

    def ticket_from_reply_address(self, address: str) -> tuple[str, bool] | None:
        """(reference, for agents) that a signed reply address names, or None if not valid."""
        local, _, domain = self.support_address.lower().partition("@")
        match = _REPLY_ADDRESS.match(address.strip().lower())
        if not match or match["local"] != local or match["domain"] != domain:
            return None
        reference, token = match["reference"], match["signature"]
        for role in ("a", ""):
            if token.startswith(role) and self.signer.same(
                self._reply_signature(role, reference), token
            ):
                return reference.upper(), role == "a"
        return None

    def _reply_signature(self, role: str, reference: str) -> str:
        signature = self.signer.sign(f"reply{role}", reference)[:_REPLY_SIGNATURE_LENGTH]
        return f"{role}{signature.lower()}"
