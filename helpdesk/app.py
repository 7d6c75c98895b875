"""The application factory: ``create_app(settings)`` builds an isolated app.

Startup is explicit and idempotent (``await app.state.helpdesk.startup()``), so tests may
call it without a server; the lifespan calls it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from faq import ShopPolicy
from helpdesk import db
from helpdesk.agents import AgentAccounts, ConsoleUrls
from helpdesk.agents.sessions import SessionCodec
from helpdesk.clock import jst
from helpdesk.db import utcnow
from helpdesk.faq_service import FaqService, PolicyFile
from helpdesk.insights.rollup import roll_up_periodically
from helpdesk.leader import HANDOVER_GRACE, Leadership
from helpdesk.mail.inbound import InboundProcessor
from helpdesk.mail.outbox import (
    LEASE_SECONDS,
    OutboxSender,
    release_leases,
    transport_from_settings,
)
from helpdesk.mail.receiver import start_receiver
from helpdesk.observability import (
    REQUEST_ID_HEADER,
    RequestObservationMiddleware,
    flush_access_log,
    request_id_of,
)
from helpdesk.photo_sweep import sweep_periodically
from helpdesk.photos import PhotoStore
from helpdesk.privacy.erasure import Erasure
from helpdesk.privacy.purge import Progress, PurgeReport, purge
from helpdesk.privacy.requests import PrivacyRequests
from helpdesk.privacy.retention import Retention, load_retention
from helpdesk.rate_limits import SharedRateLimiter, prune
from helpdesk.replies.saved import SavedReplies
from helpdesk.scheduler import Scheduler, register_jobs
from helpdesk.security import (
    BodySizeLimitMiddleware,
    CSRFMiddleware,
    SecurityHeadersMiddleware,
    client_ip,
    csrf_input,
    csrf_token,
    loggable_path,
    parse_rate,
    relative_slash_redirects,
)
from helpdesk.settings import ROOT, Settings
from helpdesk.tickets import TicketService
from helpdesk.tickets import labels as ticket_labels
from helpdesk.web import (
    api_docs,
    auth,
    console,
    console_privacy,
    console_ticket,
    csat,
    kb_console,
    ops,
    pages,
)
from helpdesk.web import faq as faq_routes
from helpdesk.web import insights as insights_routes
from helpdesk.web import privacy as privacy_routes
from helpdesk.web import replies as reply_routes
from helpdesk.web import tickets as ticket_routes
from helpdesk.web.auth import AgentSessionMiddleware, LoginRequired

log = logging.getLogger("helpdesk")
GENERIC_ERRORS = {
    400: "送信内容を読み取れませんでした。お手数ですが、もう一度お試しください。",
    404: "お探しのページは見つかりませんでした。",
    405: "この操作はできません。",
}


def _is_japanese(text: str) -> bool:
    return any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)


#: Unsafe routes with a scheme of their own, which ``CSRFMiddleware`` leaves to their
#: handlers: the ticket API takes API keys, and its handler requires the CSRF token from
#: keyless browser callers (``helpdesk.web.tickets.api_create_ticket``).
CSRF_EXEMPT = (("POST", "/api/tickets"),)

# How often the leader deletes expired rate-limit counters.
PRUNE_INTERVAL = 600.0

# How often serve looks for inbound mail to process again (interrupted, or to retry).
INBOUND_PASS_INTERVAL = 60.0
# How often serve builds confirmed copies of customers' data and resumes erasures.
PRIVACY_PASS_INTERVAL = 60.0

SERVER_ERROR_MESSAGE = (
    "申し訳ございません。エラーが発生しました。時間をおいてもう一度お試しください。"
)


def return_window_days(settings: Settings) -> int:
    from faq import load_policy

    return load_policy(settings.data_dir / "shop.toml").return_window_days


def make_templates(settings: Settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(ROOT / "templates"))
    templates.env.filters["jst"] = jst
    templates.env.globals["settings"] = settings
    templates.env.globals["csrf_input"] = csrf_input
    templates.env.globals["csrf_token"] = csrf_token
    templates.env.globals["console_urls"] = ConsoleUrls(settings.base_url)
    # Japanese labels of the ticket vocabulary, the same for pages and mails.
    templates.env.globals["labels"] = ticket_labels
    # The return window shown by the forms' script comes from the shop policy.
    templates.env.globals["return_window_days"] = return_window_days(settings)
    return templates


class Helpdesk:
    """Everything the app builds from its settings; one per app.

    ``search=False`` is for a process that answers no FAQ questions (``main.py worker``):
    it reads the shop policy alone (``PolicyFile``) and builds no search index, which would
    cost it memory, a slower start when it takes over, and a rebuild at every edit of the
    knowledge base.
    """

    def __init__(self, settings: Settings, *, search: bool = True) -> None:
        self.settings = settings
        self.search = search
        self.templates = make_templates(settings)
        self.db: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self._faq: FaqService | None = None
        self._policy: Callable[[], ShopPolicy] | None = None
        self._tickets: TicketService | None = None
        self._accounts: AgentAccounts | None = None
        self._saved_replies: SavedReplies | None = None
        self._session_codec: SessionCodec | None = None
        self._erasure: Erasure | None = None
        self._privacy: PrivacyRequests | None = None
        self.console_urls = ConsoleUrls(settings.base_url)
        self._background: list[asyncio.Task[None]] = []
        # The background work only the leader runs (``helpdesk.leader``), stopped apart.
        self._leader_tasks: list[asyncio.Task[None]] = []
        self.leadership: Leadership | None = None
        self.scheduler = Scheduler()
        register_jobs(self.scheduler)
        self._receiver: asyncio.Server | None = None
        self._inbound_pass_started = False
        self._sender_stop: asyncio.Event | None = None
        self.photos = PhotoStore(
            settings.resolved_media_dir,
            max_bytes=settings.max_photo_bytes,
            memory_budget=settings.photo_memory_bytes,
        )
        self._submission_limiter: SharedRateLimiter | None = None
        self._feedback_limiter: SharedRateLimiter | None = None

    @property
    def faq(self) -> FaqService:
        if self._faq is None:
            if not self.search:
                raise RuntimeError("this process answers no FAQ questions (search=False)")
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._faq

    def policy(self) -> ShopPolicy:
        """The shop policy as it is now (edits of data/shop.toml apply without a restart)."""
        if self._policy is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._policy()

    @property
    def submission_limiter(self) -> SharedRateLimiter:
        """Submissions (forms, API, messages) per client IP, shared by all workers."""
        if self._submission_limiter is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._submission_limiter

    @submission_limiter.setter
    def submission_limiter(self, limiter: SharedRateLimiter) -> None:
        self._submission_limiter = limiter

    @property
    def feedback_limiter(self) -> SharedRateLimiter:
        """FAQ votes and surveys per client IP: enough for a person, not for stuffing."""
        if self._feedback_limiter is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._feedback_limiter

    @feedback_limiter.setter
    def feedback_limiter(self, limiter: SharedRateLimiter) -> None:
        self._feedback_limiter = limiter

    def rate_limiter(self, limit: int, window_seconds: float, *, scope: str) -> SharedRateLimiter:
        """A limiter counted in this app's database (``helpdesk.rate_limits``)."""
        assert self.sessions is not None
        return SharedRateLimiter(self.sessions, limit, window_seconds, scope=scope)

    @property
    def tickets(self) -> TicketService:
        if self._tickets is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._tickets

    @property
    def accounts(self) -> AgentAccounts:
        """Agents' accounts: links, login, disabling, removal."""
        if self._accounts is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._accounts

    @property
    def erasure(self) -> Erasure:
        """Erasing customers' personal data (``helpdesk.privacy.erasure``)."""
        if self._erasure is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._erasure

    @property
    def privacy(self) -> PrivacyRequests:
        """Customers' privacy requests: confirmation links, copies, erasures."""
        if self._privacy is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._privacy

    def retention(self) -> Retention:
        """The retention periods of data/shop.toml, read at each use."""
        return load_retention(self.settings.data_dir / "shop.toml")

    @property
    def saved_replies(self) -> SavedReplies:
        """Saved replies (テンプレート): admins' changes, rendering for a ticket."""
        if self._saved_replies is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._saved_replies

    @property
    def session_codec(self) -> SessionCodec:
        """Signs and reads the agents' session cookies."""
        if self._session_codec is None:
            raise RuntimeError("the app has not started: await helpdesk.startup() first")
        return self._session_codec

    async def startup(self) -> None:
        """Create folders, migrate the database and load the FAQ (idempotent)."""
        if self.db is not None:
            return
        self.settings.ensure_var_dir()
        self.settings.ensure_secret_key()
        self.db = db.create_engine(self.settings.resolved_database_url)
        await db.migrate(self.db)
        self.sessions = db.session_factory(self.db)
        limit, window = parse_rate(self.settings.submission_rate)
        self._submission_limiter = self.rate_limiter(limit, window, scope="submission")
        self._feedback_limiter = self.rate_limiter(30, 600, scope="feedback")
        if self.search:
            self._faq = FaqService.from_settings(self.settings, self.sessions)
            # The console's edits over the files (issue 11), before the first request.
            await self._faq.reload_if_changed()
            log.info("FAQ loaded: %d entries", len(self._faq.entries))
            faq = self._faq
            self._policy = lambda: faq.policy
        else:
            policy_file = PolicyFile(self.settings.data_dir / "shop.toml")
            self._policy = lambda: policy_file.policy
            log.info("shop policy loaded (this process answers no FAQ questions)")
        policy = self._policy
        self._tickets = TicketService(
            self.sessions,
            # Read at each use: edits of data/shop.toml (support hours) apply at once.
            policy=policy,
            secret_key=self.settings.ensure_secret_key(),
            base_url=self.settings.base_url,
            support_address=self.settings.support_address or policy().support_address,
            automatic_mail_limit=self.settings.automatic_mail_limit,
            automatic_mail_address_limit=self.settings.automatic_mail_address_limit,
        )
        self._accounts = AgentAccounts(self.sessions)
        self._saved_replies = SavedReplies(self.sessions, policy=policy)
        self._session_codec = SessionCodec(self.settings.ensure_secret_key())
        self._erasure = Erasure(
            self.sessions,
            self.photos,
            secret_key=self.settings.ensure_secret_key(),
            mail_dir=self.settings.mail_dir,
            exports_dir=self.settings.exports_dir,
        )
        self._privacy = PrivacyRequests(
            self.sessions,
            self._tickets,
            self._erasure,
            self.photos,
            secret_key=self.settings.ensure_secret_key(),
            exports_dir=self.settings.exports_dir,
            policy=policy,
            export_link_days=lambda: self.retention().export_link_days,
        )
        # Tickets made before the support calendar was set get their first-reply due time.
        await self._tickets.backfill_first_reply_due()
        # Tickets made before the search index existed get their search document.
        await self._tickets.backfill_search()
        if self._faq is not None:
            self._background.append(asyncio.create_task(self._faq.run_gap_writer()))
            self._background.append(
                asyncio.create_task(self._faq.watch_data(self.settings.faq_reload_seconds))
            )
        self.inbound = InboundProcessor(self.sessions, self._tickets, self.photos)

    def start_photo_sweep(self) -> None:
        """Delete unreferenced photos periodically (``serve``; 0 minutes turns it off)."""
        minutes = self.settings.photo_sweep_interval_minutes
        if minutes <= 0 or self.sessions is None:
            return
        self._leader_tasks.append(
            asyncio.create_task(
                sweep_periodically(
                    self.photos,
                    self.sessions,
                    grace_seconds=self.settings.photo_sweep_grace_hours * 3600,
                    interval_seconds=minutes * 60,
                )
            )
        )

    def start_insights_rollup(self) -> None:
        """Roll up the insights' closed days in the background (``serve``)."""
        if self.sessions is None or self._policy is None:
            return
        # The leader's work (``start_background_work``): one process rolls up.
        self._leader_tasks.append(
            asyncio.create_task(roll_up_periodically(self.sessions, self._policy))
        )

    async def _privacy_pass(self) -> None:
        """Every minute: build the copies customers confirmed, finish any erasure a crash
        interrupted, carry out erasures due within a day (off the request path)."""
        while True:
            try:
                await self.privacy.build_exports()
                await self.erasure.resume()
                # The policy's deadline holds even if nobody carries an erasure out.
                await self.privacy.erase_due()
            except Exception:
                log.exception("privacy pass failed; trying again later")
            await asyncio.sleep(PRIVACY_PASS_INTERVAL)

    async def purge(
        self, *, dry_run: bool = False, progress: Progress | None = None
    ) -> PurgeReport:
        """Apply the retention periods of data/shop.toml once (``helpdesk.privacy.purge``),
        after carrying out the erasures due. The daily job: register this with a scheduler
        (or run ``main.py purge`` from cron)."""
        assert self.sessions is not None
        if not dry_run:
            await self.privacy.erase_due()
            await self.erasure.resume()
            # Once a day: the agents hear of requests nearing their deadline.
            await self.privacy.warn_nearing()
        return await purge(
            self.sessions,
            self.photos,
            self.retention(),
            dry_run=dry_run,
            mail_dir=self.settings.mail_dir,
            exports_dir=self.settings.exports_dir,
            progress=progress,
        )

    def start_privacy_pass(self) -> None:
        self._leader_tasks.append(asyncio.create_task(self._privacy_pass()))

    def mail_sender(self) -> OutboxSender:
        """The outbox sender: SMTP when a host is set, else .eml files under ``var/mail``."""
        settings = self.settings
        transport = transport_from_settings(
            smtp_host=settings.smtp_host,
            smtp_port=settings.smtp_port,
            smtp_username=settings.smtp_username,
            smtp_password=settings.smtp_password,
            smtp_security=settings.smtp_security,
            mail_dir=settings.mail_dir,
        )
        assert self.sessions is not None
        return OutboxSender(
            self.sessions,
            transport,
            from_address=self.tickets.support_address,
            from_name=settings.mail_from_name or self.policy().name,
            photos=self.photos,
            max_attempts=settings.outbox_max_attempts,
        )

    async def start_sender(self) -> None:
        """Send queued mail in the background (``serve``; tests drive the sender themselves)."""
        if not self.settings.send_mail_in_process or self._sender_stop is not None:
            return
        self._sender_stop = asyncio.Event()
        sender = self.mail_sender()
        self._leader_tasks.append(
            asyncio.create_task(sender.run_forever(idle_interval=1.0, stop=self._sender_stop))
        )
        if self.settings.smtp_host:
            log.info("sending mail through %s:%d", self.settings.smtp_host, self.settings.smtp_port)
        else:
            log.warning(
                "no HELPDESK_SMTP_HOST: outgoing mail is written to %s as .eml files",
                self.settings.mail_dir,
            )

    async def _inbound_pass(self) -> None:
        """Every minute from the start: received mail interrupted by a crash, or waiting
        after a temporary failure, is processed again (or parked, see ``process_due``)."""
        while True:
            try:
                if count := await self.inbound.process_due():
                    log.warning("handled %d inbound message(s) interrupted or retried", count)
            except Exception:
                log.exception("could not process interrupted or retried inbound mail")
            await asyncio.sleep(INBOUND_PASS_INTERVAL)

    def start_inbound_pass(self) -> None:
        """Start the periodic inbound pass (idempotent)."""
        if not self._inbound_pass_started:
            self._inbound_pass_started = True
            self._leader_tasks.append(asyncio.create_task(self._inbound_pass()))

    async def start_receiver(self) -> None:
        """Receive mail by SMTP on 127.0.0.1 when ``inbound_smtp_port`` is set."""
        port = self.settings.inbound_smtp_port
        if port is None or self._receiver is not None:
            return
        self._receiver = await start_receiver(
            self.inbound, "127.0.0.1", port, max_bytes=self.settings.inbound_max_mail_bytes
        )
        # Mail stored before a crash but never processed is picked up now, and retried.
        self.start_inbound_pass()
        log.info("receiving mail by SMTP on 127.0.0.1:%d", port)

    async def _receive_when_free(self) -> None:
        """Start the receiver, retrying while its port is still taken (a leader that has
        just died may hold it for a moment)."""
        while True:
            try:
                await self.start_receiver()
                return
            except OSError as exc:
                log.warning("cannot receive mail yet (%s); trying again", exc)
                await asyncio.sleep(1.0)

    async def start_background_work(self) -> None:
        """Everything only one process of the deployment runs: the leader's work."""
        if self.settings.inbound_smtp_port is not None:
            self._leader_tasks.append(asyncio.create_task(self._receive_when_free()))
        # Mail piped in by the MTA (``mail ingest``) is retried by serve too.
        self.start_inbound_pass()
        await self.start_sender()
        elected_at = utcnow()
        if self._sender_stop is not None:
            self._leader_tasks.append(asyncio.create_task(self._release_leases(elected_at)))
        self._leader_tasks.append(asyncio.create_task(self._release_inbound(elected_at)))
        self.start_photo_sweep()
        self.start_insights_rollup()
        self.start_privacy_pass()
        self._leader_tasks.append(asyncio.create_task(self._prune_periodically()))
        holder = self.leadership.holder if self.leadership else "this process"
        self._leader_tasks.append(
            asyncio.create_task(self.scheduler.run_forever(self, holder=holder))
        )

    async def _release_leases(self, elected_at: datetime, grace: float = HANDOVER_GRACE) -> None:
        """After a handover: mails the previous leader was sending are sent now, not when
        their 5-minute leases run out. Waits ``grace`` first, so that a previous leader
        that is alive but cut off has noticed (``Leadership.check_interval``) and stopped."""
        await asyncio.sleep(grace)
        assert self.sessions is not None
        try:
            count = await release_leases(
                self.sessions, claimed_before=elected_at, lease_seconds=LEASE_SECONDS
            )
        except Exception:
            log.exception("could not release the previous leader's outbox leases")
            return
        if count:
            log.warning("sending %d mail(s) the previous leader had claimed", count)

    async def _release_inbound(self, elected_at: datetime, grace: float = HANDOVER_GRACE) -> None:
        """After a handover: mail the previous leader's receiver had stored and was
        processing is processed now, not when its 5-minute lease runs out (the sender's
        copy, sent again after the connection dropped, was kept as a copy and started
        nothing). Waits ``grace`` first, like ``_release_leases``."""
        await asyncio.sleep(grace)
        try:
            if count := await self.inbound.release_leases(claimed_before=elected_at):
                log.warning("processing %d mail(s) the previous leader was processing", count)
                await self.inbound.process_due()
        except Exception:
            log.exception("could not release the previous leader's inbound leases")

    async def _prune_periodically(self) -> None:
        """Delete rate-limit counters and login failures past their windows."""
        assert self.sessions is not None
        while True:
            try:
                await prune(self.sessions)
            except Exception:
                log.exception("could not prune rate-limit counters")
            await asyncio.sleep(PRUNE_INTERVAL)

    async def stop_background_work(self) -> None:
        """Stop the leader's work (leadership lost, or shutting down)."""
        if self._sender_stop is not None:
            self._sender_stop.set()
            self._sender_stop = None
        for task in self._leader_tasks:
            task.cancel()
        await asyncio.gather(*self._leader_tasks, return_exceptions=True)
        self._leader_tasks.clear()
        if self._receiver is not None:
            self._receiver.close()
            await self._receiver.wait_closed()
            self._receiver = None
        self._inbound_pass_started = False

    def start_leadership(self) -> None:
        """Campaign for the background work (``serve``); see ``helpdesk.leader``."""
        if self.leadership is not None or self.sessions is None:
            return
        if not self.settings.background_work:
            log.info("HELPDESK_BACKGROUND_WORK is off: this process serves requests only")
            return
        self.leadership = Leadership(
            self.settings.resolved_database_url,
            lock_path=self.settings.var_dir / "leader.lock",
            sessions=self.sessions,
            on_elected=self.start_background_work,
            on_deposed=self.stop_background_work,
        )
        self._background.append(asyncio.create_task(self.leadership.run()))

    async def shutdown(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        self.leadership = None
        await self.stop_background_work()
        if self._faq is not None:
            await self._faq.flush_gaps()
        if self.db is not None:
            await self.db.dispose()
            self.db = None


class SettingsRefused(SystemExit):
    """Settings ``serve`` must not start with (``Settings.production_problems``)."""


def create_app_from_environment() -> Starlette:
    """The app each ``serve`` worker runs: uvicorn imports this factory by name
    (``helpdesk.app:create_app_from_environment``), so that it can start several workers.

    Raises:
        SettingsRefused: on PostgreSQL without an explicit secret key and base URL.
    """
    settings = Settings()
    if problems := settings.production_problems():
        raise SettingsRefused("madoguchi: refusing to start:\n  " + "\n  ".join(problems))
    return create_app(settings)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; with no settings, read them from the environment and ``.env``."""
    settings = settings or Settings()
    helpdesk = Helpdesk(settings)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await helpdesk.startup()
        # The outbox sender, the receiver, the inbound pass, the sweep and the daily jobs
        # run in one process of the deployment, the leader (``helpdesk.leader``).
        helpdesk.start_leadership()
        yield
        await helpdesk.shutdown()
        flush_access_log()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        wants_json = request.url.path.startswith("/api/") or "application/json" in (
            request.headers.get("accept", "")
        )
        if isinstance(exc, LoginRequired) and not wants_json:
            return RedirectResponse(helpdesk.console_urls.login(exc.next_path), status_code=303)
        # Our own HTTPExceptions carry Japanese details; Starlette's (multipart parsing,
        # unknown paths) are English, and are replaced.
        message = (
            exc.detail
            if _is_japanese(str(exc.detail))
            else GENERIC_ERRORS.get(exc.status_code, "リクエストを処理できませんでした。")
        )
        if wants_json:
            return JSONResponse({"error": message or "見つかりません。"}, exc.status_code)
        template = "404.html" if exc.status_code == 404 else "error.html"
        context = {
            "message": message,
            "status_code": exc.status_code,
            "request_id": request_id_of(request),
        }
        return helpdesk.templates.TemplateResponse(
            request, template, context, status_code=exc.status_code
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        # Always this Japanese page, whatever HELPDESK_DEBUG says: a traceback may hold
        # personal data, tokens or settings, and never reaches a user; it is in the log.
        log.exception(
            "unhandled error on %s from %s (request %s)",
            loggable_path(request.url.path),
            client_ip(request),
            request_id_of(request),
            exc_info=exc,
        )
        request_id = request_id_of(request)
        # Starlette answers a 500 outside the middleware: the id header is added here.
        headers = {REQUEST_ID_HEADER: request_id} if request_id else None
        if request.url.path.startswith("/api/"):
            body = {"error": SERVER_ERROR_MESSAGE, "request_id": request_id}
            return JSONResponse(body, 500, headers=headers)
        context = {"message": SERVER_ERROR_MESSAGE, "request_id": request_id}
        return helpdesk.templates.TemplateResponse(
            request, "error.html", context, status_code=500, headers=headers
        )

    # Every route needs a rule in helpdesk.web.authorization.ROUTE_ACCESS (a test walks
    # this table and fails for a route without one).
    routes = [
        *pages.routes,
        *privacy_routes.routes,
        *faq_routes.routes,
        *ticket_routes.routes,
        *csat.routes,
        *api_docs.routes,
        *auth.routes,
        *console.routes,
        *reply_routes.routes,
        *ops.routes,
        *insights_routes.routes,
        *console_ticket.routes,
        *kb_console.routes,
        *console_privacy.routes,
        Mount("/static", app=StaticFiles(directory=str(Path(ROOT / "static"))), name="static"),
    ]
    https = settings.base_url.lower().startswith("https://")
    middleware = [
        # Outermost: the request's id (in every log line of it), its one client address
        # (rate limits, audit, the access log), the access log line, the latency metric.
        Middleware(RequestObservationMiddleware, trusted_proxies=settings.trusted_proxy_list),
        # Around everything else, so that refusals (413, the CSRF 403) carry them too.
        Middleware(SecurityHeadersMiddleware),
        Middleware(
            BodySizeLimitMiddleware,
            max_bytes=settings.max_request_bytes,
            photo_mb=settings.max_photo_mb,
        ),
        Middleware(
            CSRFMiddleware,
            secret=settings.ensure_secret_key,
            exempt=CSRF_EXEMPT,
            allowed_origins=(settings.base_url,),
        ),
        Middleware(AgentSessionMiddleware, https=https),
    ]
    app = Starlette(
        # Never Starlette's debug pages: they show tracebacks to whoever made the request.
        debug=False,
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, 500: server_error},
    )
    relative_slash_redirects(app.router)
    app.state.helpdesk = helpdesk
    return app
