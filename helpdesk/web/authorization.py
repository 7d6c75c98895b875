"""Who may use each route: one table, checked against the routing table by a test.

Every ``(path, method)`` of the app (``HEAD`` goes with ``GET``) has exactly one rule here;
``tests/web/test_authorization.py`` walks ``app.routes`` (through mounts) and fails for a
route without a rule, for a rule without a route, and for a rule that does not hold
(an anonymous request to an agents' page must be sent to the login, an agent on an admins'
page must get 403, a customer's page must want its token ...).

To add a route: add it to its module's ``routes`` and add its line here, with the rule its
handler enforces (``require_agent(request)`` for ``Access.agent``, ``admin=True`` for
``Access.admin``). Unsafe methods are also CSRF-checked by middleware unless listed in
``helpdesk.app.CSRF_EXEMPT``.
"""

from __future__ import annotations

from enum import StrEnum


class Access(StrEnum):
    public = "public"  # anyone
    customer = "customer"  # the ticket's customer, by the token in the link (?token=)
    signed = "signed"  # a secret in the URL other than a customer's token (sig, link token)
    agent = "agent"  # a logged-in agent (require_agent)
    admin = "admin"  # a logged-in admin (require_agent(admin=True))
    api = "api"  # an integration's API key, or a same-site browser with the CSRF token
    redirect = "redirect"  # only redirects to a page with its own rule, showing nothing
    static = "static"  # the static files (CSS, scripts, icons)
    monitoring = "monitoring"  # loopback and HELPDESK_METRICS_ALLOW addresses only


ROUTE_ACCESS: dict[tuple[str, str], Access] = {
    # The site and the FAQ.
    ("/", "GET"): Access.public,
    ("/privacy", "GET"): Access.public,
    # Privacy requests (issue 12): asking answers the same for any address; the links
    # mailed to the address carry a signed, expiring token.
    ("/privacy/request", "POST"): Access.public,
    ("/privacy/confirm", "GET"): Access.signed,
    ("/privacy/confirm", "POST"): Access.signed,
    ("/privacy/export", "GET"): Access.signed,
    ("/faq", "GET"): Access.public,
    ("/faq/ask", "GET"): Access.public,
    ("/faq/ask/answer", "GET"): Access.public,
    ("/faq/{entry_id:str}", "GET"): Access.public,
    ("/faq/{entry_id:str}/feedback", "POST"): Access.public,
    ("/api/faq/search", "GET"): Access.public,
    ("/api/faq/suggest", "GET"): Access.public,
    ("/api/openapi.json", "GET"): Access.public,
    # Customers' forms and pages.
    ("/returns/new", "GET"): Access.public,
    ("/returns/new", "POST"): Access.public,
    ("/contact", "GET"): Access.public,
    ("/contact", "POST"): Access.public,
    ("/photos/kept/{digest}", "GET"): Access.signed,
    ("/t/{reference}", "GET"): Access.customer,
    ("/t/{reference}/submitted", "GET"): Access.customer,
    ("/t/{reference}/messages", "POST"): Access.customer,
    ("/t/{reference}/photos/{digest}", "GET"): Access.customer,
    # The satisfaction survey: the signed link of the resolution mail (?e=&s=&v=).
    ("/t/{reference}/csat/{resolution:int}", "GET"): Access.signed,
    ("/t/{reference}/csat/{resolution:int}", "POST"): Access.signed,
    ("/api/tickets", "POST"): Access.api,
    # Agents: sign-in.
    ("/console/login", "GET"): Access.public,
    ("/console/login", "POST"): Access.public,
    ("/console/logout", "POST"): Access.agent,
    ("/console/password/{token}", "GET"): Access.signed,
    ("/console/password/{token}", "POST"): Access.signed,
    # Agents: the console.
    ("/console", "GET"): Access.agent,
    ("/console/t/{reference}", "GET"): Access.agent,
    ("/console/t/{reference}/reply", "POST"): Access.agent,
    ("/console/t/{reference}/note", "POST"): Access.agent,
    ("/console/t/{reference}/status", "POST"): Access.agent,
    ("/console/t/{reference}/priority", "POST"): Access.agent,
    ("/console/t/{reference}/assign", "POST"): Access.agent,
    ("/console/t/{reference}/merge", "POST"): Access.agent,
    ("/console/t/{reference}/presence", "POST"): Access.agent,
    ("/console/t/{reference}/photos/{digest}", "GET"): Access.agent,
    ("/console/t/{reference}/spam", "POST"): Access.agent,
    ("/console/agents", "GET"): Access.admin,
    ("/console/agents/{agent_id:int}/approval", "POST"): Access.admin,
    # Saved replies: every agent reads them, admins change them.
    ("/console/replies", "GET"): Access.agent,
    ("/console/replies/new", "GET"): Access.admin,
    ("/console/replies/new", "POST"): Access.admin,
    ("/console/replies/{reply_id:int}", "GET"): Access.admin,
    ("/console/replies/{reply_id:int}", "POST"): Access.admin,
    ("/console/replies/{reply_id:int}/delete", "POST"): Access.admin,
    # Replies of agents who need approval: admins decide.
    ("/console/approvals", "GET"): Access.admin,
    ("/console/approvals/{pending_id:int}/approve", "POST"): Access.admin,
    ("/console/approvals/{pending_id:int}/reject", "POST"): Access.admin,
    ("/console/insights", "GET"): Access.admin,
    ("/console/insights/{table}.csv", "GET"): Access.admin,
    # Admins: the knowledge base (issue 11).
    ("/console/faq", "GET"): Access.admin,
    ("/console/faq/new", "GET"): Access.admin,
    ("/console/faq/new", "POST"): Access.admin,
    ("/console/faq/e/{entry_id}", "GET"): Access.admin,
    ("/console/faq/e/{entry_id}", "POST"): Access.admin,
    ("/console/faq/e/{entry_id}/status", "POST"): Access.admin,
    ("/console/faq/categories", "GET"): Access.admin,
    ("/console/faq/categories", "POST"): Access.admin,
    ("/console/faq/preview", "GET"): Access.admin,
    ("/console/faq/gaps", "GET"): Access.admin,
    ("/console/faq/gaps/phrasing", "POST"): Access.admin,
    ("/console/faq/gaps/synonym", "POST"): Access.admin,
    ("/console/t/{reference}/faq-draft", "POST"): Access.admin,
    # Privacy requests: agents follow them; admins carry them out and correct customers.
    ("/console/privacy", "GET"): Access.agent,
    ("/console/privacy/{request_id:int}/run", "POST"): Access.admin,
    ("/console/customers/{customer_id:int}/correct", "POST"): Access.admin,
    # Links of older agents' mails (issue 7, #19): to the console, behind its login.
    ("/agent/t/{reference}", "GET"): Access.redirect,
    ("/agent/t/{reference}/photos/{digest}", "GET"): Access.redirect,
    ("/static", "GET"): Access.static,
    # Probes and metrics (helpdesk.web.ops): liveness and readiness say nothing private.
    ("/healthz", "GET"): Access.public,
    ("/readyz", "GET"): Access.public,
    ("/metrics", "GET"): Access.monitoring,
}
