"""Every URL of the agents' console, built in one place (tickets' own: ``TicketUrls``)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

CONSOLE = "/console"
LOGIN = "/console/login"
LOGOUT = "/console/logout"
AGENTS = "/console/agents"
INSIGHTS = "/console/insights"
FAQ = "/console/faq"


def safe_next(target: str | None) -> str:
    """A path within this site to go to after login; anything else is the console's home.

    Only a path is taken ("/console/t/HD-26-00001"): never "//evil.example" or
    "/\\evil.example", which browsers read as another host, nor a full URL.
    """
    if (
        not target
        or len(target) > 2000
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(c in target for c in "\\\r\n\t")
    ):
        return CONSOLE
    return target


class ConsoleUrls:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def absolute(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def home(self) -> str:
        """The queue."""
        return CONSOLE

    def login(self, next_path: str | None = None) -> str:
        target = safe_next(next_path)
        return LOGIN if target == CONSOLE else f"{LOGIN}?{urlencode({'next': target})}"

    def logout(self) -> str:
        return LOGOUT

    def agents(self) -> str:
        """The admins' list of agents."""
        return AGENTS

    def insights(self, params: dict[str, str] | None = None) -> str:
        """The admins' insights page (``params``: its date range)."""
        return f"{INSIGHTS}?{urlencode(params)}" if params else INSIGHTS

    def insights_csv(self, table: str, params: dict[str, str] | None = None) -> str:
        """One table of the insights page as CSV."""
        path = f"{INSIGHTS}/{quote(table, safe='')}.csv"
        return f"{path}?{urlencode(params)}" if params else path

    def password(self, token: str) -> str:
        """The one-time page where an agent sets a password."""
        return f"/console/password/{quote(token, safe='')}"

    def password_url(self, token: str) -> str:
        return self.absolute(self.password(token))

    def ticket(self, reference: str) -> str:
        return f"/console/t/{quote(reference, safe='')}"

    def ticket_photo(self, reference: str, digest: str) -> str:
        return f"{self.ticket(reference)}/photos/{quote(digest, safe='')}"

    # -- the knowledge base (admins) ------------------------------------------------------

    def faq(self) -> str:
        """The entries of the knowledge base, in every state."""
        return FAQ

    def faq_entry(self, entry_id: str) -> str:
        return f"{FAQ}/e/{quote(entry_id, safe='')}"

    def faq_entry_status(self, entry_id: str) -> str:
        return f"{self.faq_entry(entry_id)}/status"

    def faq_new(self, **prefill: str) -> str:
        """The form of a new entry, ``prefill`` (question, alternatives, source...) filled in."""
        query = urlencode({k: v for k, v in prefill.items() if v})
        return f"{FAQ}/new?{query}" if query else f"{FAQ}/new"

    def faq_categories(self) -> str:
        return f"{FAQ}/categories"

    def faq_preview(self, query: str | None = None) -> str:
        """Why a question matches what it does."""
        return f"{FAQ}/preview?{urlencode({'q': query})}" if query else f"{FAQ}/preview"

    def faq_gaps(self) -> str:
        return f"{FAQ}/gaps"

    def faq_gap_phrasing(self) -> str:
        return f"{FAQ}/gaps/phrasing"

    def faq_gap_synonym(self) -> str:
        return f"{FAQ}/gaps/synonym"

    def faq_draft_from_ticket(self, reference: str) -> str:
        return f"{self.ticket(reference)}/faq-draft"
