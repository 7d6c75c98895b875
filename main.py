#!/usr/bin/env python3
"""madoguchi's command line: serve, ask, faq, mail, photos, agent."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import sys
from pathlib import Path
from typing import Any

from helpdesk.settings import Settings


def log_config(*, json_lines: bool = False) -> dict[str, Any]:
    """uvicorn's logging, plus the app's own loggers (``helpdesk``, ``helpdesk.access``).

    With ``json_lines`` (``HELPDESK_LOG_FORMAT=json``) every line, uvicorn's included, is
    one JSON object with the request id (``helpdesk.observability.JsonFormatter``).
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": "helpdesk.observability.RequestIdFilter"}}
    config["formatters"]["default"]["fmt"] = "%(levelprefix)s [%(request_id)s] %(message)s"
    config["formatters"]["plain"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s [%(request_id)s] %(message)s",
    }
    config["handlers"]["plain_stdout"] = {
        "formatter": "plain",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "filters": ["request_id"],
    }
    # Personal data (addresses, phone, card and order numbers ...) is masked in every line.
    config["filters"]["mask_personal_data"] = {"()": "helpdesk.privacy.masking.MaskingFilter"}
    config["loggers"]["helpdesk"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["loggers"]["helpdesk.access"] = {
        "handlers": ["plain_stdout"],
        "level": "INFO",
        "propagate": False,
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id", "mask_personal_data"]
    if json_lines:
        config["formatters"]["json"] = {"()": "helpdesk.observability.JsonFormatter"}
        for handler in config["handlers"].values():
            handler["formatter"] = "json"
    return config


def server_config(app: Any, *, host: str, port: int, **overrides: Any) -> Any:
    """The uvicorn configuration ``serve`` runs with (tests start a server from it too).

    uvicorn must not rewrite the client address from ``X-Forwarded-For`` (its default for
    requests from 127.0.0.1): the app decides, believing only ``HELPDESK_TRUSTED_PROXIES``
    (``helpdesk.observability.RequestObservationMiddleware``, which also writes the access
    log with that address instead of uvicorn's). Logging is set up by the caller
    (``log_config``).
    """
    import uvicorn

    return uvicorn.Config(app, **server_options(host=host, port=port, **overrides))


def server_options(*, host: str, port: int, **overrides: Any) -> dict[str, Any]:
    """uvicorn's options for ``serve`` (see ``server_config``)."""
    return {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "info",
        "log_config": None,
        "proxy_headers": False,
        "forwarded_allow_ips": "",
        "access_log": False,
        "server_header": False,
        **overrides,
    }


#: What uvicorn imports in each worker (an app factory, called once per worker).
APP_FACTORY = "helpdesk.app:create_app_from_environment"


def refused(settings: Settings) -> bool:
    """Whether ``settings`` must not run a server (``Settings.production_problems``); says
    why on standard error."""
    if problems := settings.production_problems():
        print("madoguchi: refusing to start:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return True
    return False


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import os

    import uvicorn

    if refused(settings):
        return EX_CONFIG
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if "base_url" not in settings.model_fields_set:
        # Links in mails must reach this server: without HELPDESK_BASE_URL, they name the
        # host and port it listens on (a wildcard address is no use in a link).
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        host = f"[{host}]" if ":" in host else host
        settings.base_url = f"http://{host}:{args.port}"
        if args.host != host.strip("[]"):
            print(
                f"warning: HELPDESK_BASE_URL is not set; links in mails use {settings.base_url}",
                file=sys.stderr,
                flush=True,
            )
        # Each worker builds its settings from the environment (APP_FACTORY).
        os.environ["HELPDESK_BASE_URL"] = settings.base_url
    # Made once here, not raced by the workers.
    settings.ensure_var_dir()
    settings.ensure_secret_key()
    # Every worker writes its metrics there; /metrics adds them up (prometheus-client).
    # Set before anything imports prometheus-client (helpdesk.metrics): it chooses at
    # import whether counts live in this process or in these files.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.prepare_metrics_dir())
    print(f"madoguchi: http://{args.host}:{args.port}/ ({args.workers} worker(s))", flush=True)
    print(f"  links in mails: {settings.base_url}", flush=True)
    print(f"  database: {settings.resolved_database_url}", flush=True)
    if settings.smtp_host:
        print(f"  mail: sent through {settings.smtp_host}:{settings.smtp_port}", flush=True)
    else:
        print(f"  mail: no HELPDESK_SMTP_HOST, written to {settings.mail_dir}/", flush=True)
    if settings.inbound_smtp_port:
        print(f"  receiving mail on 127.0.0.1:{settings.inbound_smtp_port}", flush=True)
    if settings.trusted_proxy_list:
        print(f"  trusted proxies: {', '.join(settings.trusted_proxy_list)}", flush=True)
    options = server_options(
        host=args.host,
        port=args.port,
        factory=True,
        workers=args.workers,
        # Applied in each worker process as well.
        log_config=log_config(json_lines=settings.log_format == "json"),
    )
    supervisor = None
    if args.workers > 1 and settings.background_work:
        # The web workers serve requests only; the background work runs in a process of
        # its own, started (and restarted) from here: helpdesk/worker.py says why.
        from helpdesk.worker import Supervisor, worker_command

        os.environ["HELPDESK_BACKGROUND_WORK"] = "false"
        supervisor = Supervisor(
            worker_command(os.path.abspath(__file__)),
            env={**os.environ, "HELPDESK_BACKGROUND_WORK": "true"},
        )
        supervisor.start()
        print("  background work: one process of its own (main.py worker)", flush=True)
    try:
        uvicorn.run(APP_FACTORY, **options)
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """The background work only (outbox, receiver, retries, sweeps, daily jobs), no web."""
    import logging.config

    from helpdesk import worker

    if refused(settings):
        return EX_CONFIG
    if not settings.background_work:
        print("error: HELPDESK_BACKGROUND_WORK is off: nothing to do", file=sys.stderr)
        return EX_CONFIG
    logging.config.dictConfig(log_config(json_lines=settings.log_format == "json"))
    return worker.main(settings, parent=args.parent)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from faq import SearchEngine
    from helpdesk.faq_service import MAX_RESULTS, answer_json, answer_text, contact_path

    engine = SearchEngine.from_directory(settings.data_dir)
    queries = [args.query] if args.query is not None else (line.rstrip("\n") for line in sys.stdin)
    for query in queries:
        answer = engine.ask(query, limit=MAX_RESULTS)
        if args.json:
            body = answer_json(answer, base_url=settings.base_url)
            print(json.dumps(body, ensure_ascii=False), flush=True)
            continue
        print(f"Q: {query}")
        if answer.searched_as:
            print(f"   『{answer.searched_as}』で検索しました。")
        if answer.answered and answer.entry is not None:
            print(
                f"A: {answer_text(answer)}\n   (確信度 {answer.confidence:.2f}, {answer.entry.id})"
            )
        else:
            print("A: よくある質問には、このご質問への回答がありませんでした。")
            for hit in answer.suggestions:
                print(f"   近い質問: {hit.entry.question} ({hit.entry.id})")
            print(f"   お問い合わせフォーム: {settings.base_url}{contact_path(query)}")
        print(flush=True)
    return 0


def cmd_faq_check(args: argparse.Namespace, settings: Settings) -> int:
    from faq import KnowledgeBaseError, PolicyError, SearchEngine
    from faq.synonyms import SynonymError

    try:
        engine = SearchEngine.from_directory(settings.data_dir)
    except (KnowledgeBaseError, PolicyError, SynonymError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    entries = engine.entries
    categories = sorted({e.category or "-" for e in entries})
    print(f"ok: {len(entries)} entries in {len(categories)} categories ({', '.join(categories)})")
    groups = engine.synonyms.groups
    print(f"ok: {len(groups)} synonym groups in {settings.data_dir / 'synonyms.toml'}")
    assert engine.policy is not None
    print(f"ok: shop policy of {engine.policy.name}")
    support = engine.policy.support
    if support is None:
        print("ok: no [support] calendar: no first-reply due times, no promised reply date")
    else:
        hours = engine.policy.first_reply_hours
        print(f"ok: support calendar: {support.summary()} first reply within {hours:g} hours")
    return 0


def cmd_faq_import(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from faq import load_entries
    from faq.importer import import_rows, write_entries

    source = Path(args.file)
    if not source.exists():
        print(f"error: {source} not found", file=sys.stderr)
        return 1
    existing = load_entries(settings.data_dir / "faq")
    report = import_rows(
        source, existing=existing, progress=lambda rows: tqdm(rows, desc="import", unit="行")
    )
    target = Path(args.into) if args.into else settings.data_dir / "faq" / "imported.toml"
    if report.imported:
        write_entries(target, report.imported)
        load_entries(settings.data_dir / "faq")  # proves the result loads
    print(f"imported {len(report.imported)} entries into {target}")
    for number, reason in report.refused:
        print(f"refused row {number}: {reason}")
    return 0 if report.imported or not report.refused else 1


def cmd_faq_gaps(args: argparse.Namespace, settings: Settings) -> int:
    from helpdesk.app import Helpdesk, jst

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            gaps = await helpdesk.faq.gaps(limit=args.limit)
            votes = await helpdesk.faq.feedback_totals()
        finally:
            await helpdesk.shutdown()
        if not gaps:
            print("no gaps logged yet")
        for gap in gaps:
            best = gap.best_entry_id or "-"
            print(f"{gap.count:5d}  {jst(gap.last_seen)}  {gap.query}  (best: {best})")
        unhelpful = sorted(((no, yes, e) for e, (yes, no) in votes.items() if no), reverse=True)
        if unhelpful:
            print("\nanswers voted not helpful (no / yes):")
            for no, yes, entry_id in unhelpful:
                print(f"{no:5d} / {yes:<5d} {entry_id}")
        return 0

    return asyncio.run(run())


def cmd_insights_rollup(args: argparse.Namespace, settings: Settings) -> int:
    """Roll up the closed days of the insights page ahead of its first view."""
    from helpdesk.app import Helpdesk
    from helpdesk.db import utcnow
    from helpdesk.insights.rollup import roll_up_closed_days

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            policy = helpdesk.faq.policy
            assert helpdesk.sessions is not None
            rolled = await roll_up_closed_days(
                helpdesk.sessions,
                days=args.days,
                now=utcnow(),
                timezone=policy.timezone,
                calendar=policy.support,
                rebuild=args.rebuild,
            )
        finally:
            await helpdesk.shutdown()
        print(f"{rolled} days rolled up")
        return 0

    return asyncio.run(run())


def cmd_faq_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write the knowledge base as it is now (files and the console's edits) as files."""
    from faq import KnowledgeBaseError, SearchEngine
    from faq.synonyms import SynonymError
    from helpdesk.app import Helpdesk
    from helpdesk.kb_store import PUBLISHED, export

    target = Path(args.dir) if args.dir else settings.data_dir

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            assert helpdesk.faq.store is not None
            kb = await helpdesk.faq.store.load()
        finally:
            await helpdesk.shutdown()
        written = export(kb, target, data_dir=settings.data_dir)
        try:
            engine = SearchEngine.from_directory(target)
        except (KnowledgeBaseError, SynonymError) as exc:  # a bug if so: said, not hidden
            print(f"error: the exported files do not load: {exc}", file=sys.stderr)
            return 1
        published = sum(item.status == PUBLISHED for item in kb.entries.values())
        print(f"exported {published} entries (version {kb.version}) into {target}")
        for path in written:
            print(f"  {path}")
        print(f"ok: {len(engine.entries)} entries load from {target / 'faq'}")
        return 0

    return asyncio.run(run())


# sysexits.h: what an MTA pipe understands.
EX_OK, EX_DATAERR, EX_TEMPFAIL, EX_CONFIG = 0, 65, 75, 78


def cmd_mail_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Read one message from standard input (an MTA pipe) and process it."""
    from helpdesk.app import Helpdesk

    raw = sys.stdin.buffer.read()
    if not raw.strip():
        print("error: no message on standard input", file=sys.stderr)
        return EX_DATAERR

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        try:
            await helpdesk.startup()
            row = await helpdesk.inbound.receive(
                raw, envelope_from=args.sender, envelope_to=args.recipient or []
            )
        except Exception as exc:  # not stored: the MTA must keep it and retry
            print(f"error: could not store the message: {exc}", file=sys.stderr)
            return EX_TEMPFAIL
        finally:
            await helpdesk.shutdown()
        print(f"{row.status}: {row.outcome}")
        return EX_OK

    return asyncio.run(run())


def cmd_mail_send_queued(args: argparse.Namespace, settings: Settings) -> int:
    """Send what the outbox holds now (for cron when serve does not send itself)."""
    from helpdesk.app import Helpdesk

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            handled = await helpdesk.mail_sender().drain()
        finally:
            await helpdesk.shutdown()
        print(f"handled {handled} queued mail(s)")
        return EX_OK

    return asyncio.run(run())


def cmd_mail_status(args: argparse.Namespace, settings: Settings) -> int:
    """The outbox by status, dead letters, and received mail that needs a look."""
    from sqlalchemy import func, select
    from sqlmodel import col

    from helpdesk.app import Helpdesk, jst
    from helpdesk.models import InboundMail, Outbox

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            async with helpdesk.sessions() as session:  # type: ignore[misc]
                counts = await session.execute(
                    select(col(Outbox.status), func.count()).group_by(col(Outbox.status))
                )
                print("outbox:", ", ".join(f"{s} {n}" for s, n in counts.all()) or "empty")
                dead = await session.execute(select(Outbox).where(col(Outbox.status) == "dead"))
                for row in dead.scalars():
                    print(f"  dead #{row.id} to {row.to_address}: {row.subject} ({row.last_error})")
                inbound = await session.execute(
                    select(InboundMail)
                    .where(col(InboundMail.status).in_(("failed", "received", "retry")))
                    .order_by(col(InboundMail.id))
                )
                for row in inbound.scalars():
                    when = jst(row.received_at)
                    retry = f" next {jst(row.next_attempt_at)}" if row.status == "retry" else ""
                    print(
                        f"  inbound #{row.id} {row.status} {when} {row.from_address}"
                        f" (runs {row.attempts}{retry}): {row.outcome}"
                    )
        finally:
            await helpdesk.shutdown()
        return 0

    return asyncio.run(run())


@contextlib.asynccontextmanager
async def _database(settings: Settings):  # type: ignore[no-untyped-def]
    """Sessions on the migrated database, without the rest of the app (no FAQ to load):
    for maintenance commands run from cron."""
    from helpdesk import db

    settings.ensure_var_dir()
    engine = db.create_engine(settings.resolved_database_url)
    try:
        await db.migrate(engine)
        yield db.session_factory(engine)
    finally:
        await engine.dispose()


def cmd_mail_retry(args: argparse.Namespace, settings: Settings) -> int:
    """Put dead mail back in the queue: one or more by id, or all with --dead."""
    from sqlalchemy import select
    from sqlmodel import col

    from helpdesk.mail.outbox import requeue_dead
    from helpdesk.models import Outbox

    if bool(args.ids) == bool(args.dead):
        print("error: give outbox ids, or --dead for all dead mail", file=sys.stderr)
        return 2

    async def run() -> int:
        async with _database(settings) as sessions, sessions() as session:
            rows = await requeue_dead(session, ids=args.ids or None, actor="main.py")
            await session.commit()
            requeued = {row.id for row in rows}
            for row in rows:
                print(f"requeued #{row.id} to {row.to_address}: {row.subject}")
            refused = 0
            for row_id in args.ids or ():
                if row_id in requeued:
                    continue
                refused += 1
                other = await session.get(Outbox, row_id)
                if other is None:
                    print(f"error: no outbox mail #{row_id}", file=sys.stderr)
                elif other.status == "sent":
                    print(f"error: #{row_id} was sent: it is not sent twice", file=sys.stderr)
                else:
                    print(f"error: #{row_id} is {other.status}, not dead", file=sys.stderr)
            if args.dead and not rows:
                left = await session.execute(
                    select(col(Outbox.id)).where(col(Outbox.status) == "dead")
                )
                print("no dead mail" if not left.first() else "nothing requeued")
        if rows:
            where = "serve sends it" if settings.send_mail_in_process else "run mail send-queued"
            print(f"{len(rows)} mail(s) queued again: {where}")
        return 1 if refused else 0

    return asyncio.run(run())


def cmd_photos_sweep(args: argparse.Namespace, settings: Settings) -> int:
    """Delete photos no ticket or unsent mail refers to, past the grace period."""
    from helpdesk.photo_sweep import sweep_photos
    from helpdesk.photos import PhotoStore

    hours = args.grace_hours if args.grace_hours is not None else settings.photo_sweep_grace_hours
    if hours < 1:
        print("error: the grace period must be at least 1 hour", file=sys.stderr)
        return 2

    async def run() -> int:
        store = PhotoStore(settings.resolved_media_dir)
        async with _database(settings) as sessions:
            report = await sweep_photos(
                store, sessions, grace_seconds=hours * 3600, dry_run=args.dry_run
            )
        verb = "would delete" if args.dry_run else "deleted"
        for path in report.deleted if args.verbose or args.dry_run else ():
            print(f"{verb} {path}")
        megabytes = report.deleted_bytes / 1_048_576
        removed = "to remove" if args.dry_run else "removed"
        print(
            f"{verb} {len(report.deleted)} file(s), {megabytes:.1f} MB; kept "
            f"{report.referenced} referenced and {report.recent} newer than {hours:g} h; "
            f"{report.temporaries} interrupted upload(s) {removed}"
        )
        return 0

    return asyncio.run(run())


def cmd_mail_reprocess(args: argparse.Namespace, settings: Settings) -> int:
    """Process one received message again (failed, parked, waiting for a retry ...)."""
    from helpdesk.app import Helpdesk

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            row = await helpdesk.inbound.reprocess(args.id, force=args.force)
        except (LookupError, ValueError) as exc:
            print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 1
        finally:
            await helpdesk.shutdown()
        print(f"inbound #{row.id} {row.status}: {row.outcome}")
        return 0 if row.status in ("processed", "ignored") else 1

    return asyncio.run(run())


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the retention periods of data/shop.toml [retention] (``--dry-run``: count only)."""
    from tqdm import tqdm

    from helpdesk.app import Helpdesk
    from helpdesk.privacy.purge import RULES
    from helpdesk.privacy.retention import RetentionError

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        bars = {
            rule: tqdm(desc=rule, unit="行", position=i, leave=True, disable=args.quiet)
            for i, rule in enumerate(RULES)
        }
        try:
            report = await helpdesk.purge(
                dry_run=args.dry_run, progress=lambda rule, n: bars[rule].update(n)
            )
        except RetentionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for bar in bars.values():
                bar.close()
            await helpdesk.shutdown()
        title = (
            "would be removed or anonymized (dry run)" if args.dry_run else "removed or anonymized"
        )
        width = max(len(name) for name, _count in report.rows())
        print(f"\n{'':{width}}  {title}")
        for name, count in report.rows():
            print(f"{name:{width}}  {count:>10,}")
        print(f"{'seconds':{width}}  {report.seconds:>10.1f}")
        return 0

    return asyncio.run(run())


async def _accounts_run(settings: Settings, action: Any) -> int:
    """Run ``action(helpdesk)`` on a started app; errors of the account rules become a
    message and exit code 1."""
    from helpdesk.agents import AccountError
    from helpdesk.app import Helpdesk

    helpdesk = Helpdesk(settings)
    await helpdesk.startup()
    try:
        return int(await action(helpdesk))
    except (AccountError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await helpdesk.shutdown()


def _print_link(helpdesk: Any, agent: Any, token: str) -> None:
    from helpdesk.agents import LINK_LIFETIME

    hours = int(LINK_LIFETIME.total_seconds() // 3600)
    print(f"password link for {agent.email} (one use, valid {hours} hours):")
    print(helpdesk.console_urls.password_url(token))


def cmd_agent_add(args: argparse.Namespace, settings: Settings) -> int:
    """Register an agent (or update one) and print a one-time link to set a password."""
    from helpdesk.models import AgentRole

    role = AgentRole.admin if args.admin else AgentRole(args.role) if args.role else None

    async def action(helpdesk: Any) -> int:
        agent, token = await helpdesk.accounts.add(args.email, args.name, role=role)
        print(f"agent {agent.name} <{agent.email}> registered ({agent.role})")
        if agent.disabled_at is not None:
            print("note: this agent is disabled; run `main.py agent enable` to let them in")
        _print_link(helpdesk, agent, token)
        return 0

    return asyncio.run(_accounts_run(settings, action))


def cmd_agent_reset_password(args: argparse.Namespace, settings: Settings) -> int:
    """A new one-time link; the old password and every session stop working."""

    async def action(helpdesk: Any) -> int:
        agent, token = await helpdesk.accounts.reset_password(args.email)
        print(f"the password of {agent.email} no longer works; their sessions ended")
        _print_link(helpdesk, agent, token)
        return 0

    return asyncio.run(_accounts_run(settings, action))


def cmd_agent_disable(args: argparse.Namespace, settings: Settings) -> int:
    async def action(helpdesk: Any) -> int:
        agent = await helpdesk.accounts.disable(args.email)
        print(f"agent {agent.email} disabled: no login, no commands by mail; sessions ended")
        return 0

    return asyncio.run(_accounts_run(settings, action))


def cmd_agent_enable(args: argparse.Namespace, settings: Settings) -> int:
    async def action(helpdesk: Any) -> int:
        agent = await helpdesk.accounts.enable(args.email)
        print(f"agent {agent.email} enabled")
        return 0

    return asyncio.run(_accounts_run(settings, action))


def cmd_agent_remove(args: argparse.Namespace, settings: Settings) -> int:
    async def action(helpdesk: Any) -> int:
        agent, references = await helpdesk.accounts.remove(args.email)
        print(f"agent {agent.email} removed (kept in the audit trail; sessions ended)")
        if references:
            print(f"unassigned {len(references)} ticket(s): {', '.join(references)}")
        return 0

    return asyncio.run(_accounts_run(settings, action))


def cmd_agent_list(args: argparse.Namespace, settings: Settings) -> int:
    async def action(helpdesk: Any) -> int:
        agents = await helpdesk.accounts.agents()
        if not agents:
            print("no agents yet: main.py agent add EMAIL --name NAME [--admin]")
        for agent in agents:
            state = (
                "removed"
                if agent.removed_at is not None
                else "disabled"
                if agent.disabled_at is not None
                else "active"
                if agent.password_hash
                else "no password yet"
            )
            print(f"{agent.email:40} {agent.role:6} {state:16} {agent.name}")
        return 0

    return asyncio.run(_accounts_run(settings, action))


def cmd_ticket_revoke_link(args: argparse.Namespace, settings: Settings) -> int:
    """Revoke a ticket's customer link; the customer is mailed a new one."""
    from helpdesk.tickets import Actor, ActorRole, Channel

    async def action(helpdesk: Any) -> int:
        ticket = await helpdesk.tickets.find(args.reference.strip().upper())
        if ticket is None:
            print(f"error: no ticket {args.reference}", file=sys.stderr)
            return 1
        actor = Actor(ActorRole.system, "main.py", Channel.system, "main.py")
        await helpdesk.tickets.revoke_customer_link(ticket, actor)
        print(f"{ticket.reference}: the customer's old links no longer open the ticket")
        print("a mail with the new link is queued to the customer")
        return 0

    return asyncio.run(_accounts_run(settings, action))


def cmd_ticket_reindex(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild the tickets' search index (every document, or only missing ones)."""

    async def action(helpdesk: Any) -> int:
        done = await helpdesk.tickets.backfill_search(everything=not args.missing)
        print(f"{done} tickets indexed for search")
        return 0

    return asyncio.run(_accounts_run(settings, action))


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    """The database and the media folder into one archive (``helpdesk.backup``)."""
    from datetime import UTC, datetime

    from helpdesk.backup import BackupError, backup

    if args.output:
        target = Path(args.output)
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        target = settings.var_dir / "backups" / f"madoguchi-{stamp}.tar.gz"
    try:
        manifest = backup(settings, target)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(item["size"] for item in manifest["files"])
    print(
        f"backed up the {manifest['database']} database and"
        f" {sum(1 for i in manifest['files'] if i['path'].startswith('media/'))} media file(s)"
        f" ({size / 1_048_576:.1f} MB) to {target}"
    )
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    """Verify an archive's checksums and put its database and media back."""
    from helpdesk.backup import BackupError, restore, verify

    archive = Path(args.archive)
    try:
        if args.verify_only:
            manifest = verify(archive)
            print(f"ok: {len(manifest['files'])} file(s) match their checksums")
            return 0
        restored = asyncio.run(restore(settings, archive, force=args.force))
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"restored the {restored.database} database and {restored.files} media file(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="madoguchi helpdesk")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="web worker processes; from 2, the background work runs in a process of its own",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker", help="run the background work only (outbox, receiver, daily jobs), no web"
    )
    worker.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)

    ask = sub.add_parser("ask", help="ask the FAQ bot (one query, or one a line on stdin)")
    ask.add_argument("--json", action="store_true", help="one JSON object per answer")
    ask.add_argument("query", nargs="?")
    ask.set_defaults(func=cmd_ask)

    faq = sub.add_parser("faq", help="manage the knowledge base").add_subparsers(
        dest="faq_command", required=True
    )
    check = faq.add_parser("check", help="validate data/faq, data/synonyms.toml and data/shop.toml")
    check.set_defaults(func=cmd_faq_check)
    imp = faq.add_parser("import", help="import CSV (question,answer,category,tags) or JSONL")
    imp.add_argument("file")
    imp.add_argument("--into", help="TOML file to append to (default data/faq/imported.toml)")
    imp.set_defaults(func=cmd_faq_import)
    gaps = faq.add_parser("gaps", help="questions the FAQ could not answer with confidence")
    gaps.add_argument("--limit", type=int, default=50)
    gaps.set_defaults(func=cmd_faq_gaps)
    export = faq.add_parser(
        "export",
        help="write the knowledge base with the console's edits as faq/*.toml and synonyms.toml",
    )
    export.add_argument(
        "dir", nargs="?", help="data folder to write into (default: the data folder itself)"
    )
    export.set_defaults(func=cmd_faq_export)

    insights = sub.add_parser("insights", help="the admins' insights page").add_subparsers(
        dest="insights_command", required=True
    )
    rollup = insights.add_parser(
        "rollup", help="roll up the closed days of the last N days (the page does it on demand)"
    )
    rollup.add_argument("--days", type=int, default=366)
    rollup.add_argument("--rebuild", action="store_true", help="drop and compute those days again")
    rollup.set_defaults(func=cmd_insights_rollup)

    mail = sub.add_parser("mail", help="e-mail").add_subparsers(dest="mail_command", required=True)
    ingest = mail.add_parser("ingest", help="read one message from standard input (MTA pipe)")
    ingest.add_argument("--sender", help="envelope sender")
    ingest.add_argument("--recipient", action="append", help="envelope recipient (repeatable)")
    ingest.set_defaults(func=cmd_mail_ingest)
    send = mail.add_parser("send-queued", help="send the mail waiting in the outbox (cron)")
    send.set_defaults(func=cmd_mail_send_queued)
    status = mail.add_parser("status", help="outbox counts, dead letters, failed inbound mail")
    status.set_defaults(func=cmd_mail_status)
    retry = mail.add_parser("retry", help="queue dead mail again (by id, or all with --dead)")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="outbox id")
    retry.add_argument("--dead", action="store_true", help="every dead mail")
    retry.set_defaults(func=cmd_mail_retry)

    photos = sub.add_parser("photos", help="customers' photos").add_subparsers(
        dest="photos_command", required=True
    )
    sweep = photos.add_parser(
        "sweep", help="delete photos no ticket or unsent mail refers to (after a grace period)"
    )
    sweep.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    sweep.add_argument("--grace-hours", type=float, help="default HELPDESK_PHOTO_SWEEP_GRACE_HOURS")
    sweep.add_argument("-v", "--verbose", action="store_true", help="list the files deleted")
    sweep.set_defaults(func=cmd_photos_sweep)
    reprocess = mail.add_parser(
        "reprocess", help="process one received message again (any status but processed)"
    )
    reprocess.add_argument("id", type=int, help="the inbound message number (mail status)")
    reprocess.add_argument(
        "--force", action="store_true", help="also a processed one (nothing is added twice)"
    )
    reprocess.set_defaults(func=cmd_mail_reprocess)

    agent = sub.add_parser("agent", help="support agents").add_subparsers(
        dest="agent_command", required=True
    )
    add = agent.add_parser(
        "add", help="register or update an agent; prints a one-time link to set a password"
    )
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--admin", action="store_true", help="the agent is an admin")
    add.add_argument("--role", choices=["agent", "admin"], help="set the role (default: kept)")
    add.set_defaults(func=cmd_agent_add)
    reset = agent.add_parser(
        "reset-password", help="new one-time link; the old password and sessions stop working"
    )
    reset.add_argument("email")
    reset.set_defaults(func=cmd_agent_reset_password)
    for name, func, text in (
        ("disable", cmd_agent_disable, "no login and no mail commands until enabled"),
        ("enable", cmd_agent_enable, "undo disable"),
        ("remove", cmd_agent_remove, "remove for good (kept in the audit trail; unassigns)"),
    ):
        command = agent.add_parser(name, help=text)
        command.add_argument("email")
        command.set_defaults(func=func)
    agent.add_parser("list", help="every agent with role and state").set_defaults(
        func=cmd_agent_list
    )

    backup = sub.add_parser(
        "backup", help="database and media folder into one archive with checksums"
    )
    backup.add_argument("--output", "-o", help="default var/backups/madoguchi-DATE.tar.gz")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="verify an archive and restore it (server stopped)")
    restore.add_argument("archive")
    restore.add_argument("--force", action="store_true", help="replace existing data")
    restore.add_argument(
        "--verify-only", action="store_true", help="check the checksums, change nothing"
    )
    restore.set_defaults(func=cmd_restore)

    ticket = sub.add_parser("ticket", help="tickets").add_subparsers(
        dest="ticket_command", required=True
    )
    revoke = ticket.add_parser(
        "revoke-link", help="revoke the customer's status link and mail them a new one"
    )
    revoke.add_argument("reference", help="HD-26-00042")
    revoke.set_defaults(func=cmd_ticket_revoke_link)
    reindex = ticket.add_parser("reindex", help="rebuild the tickets' full-text search index")
    reindex.add_argument(
        "--missing", action="store_true", help="only tickets without a search document"
    )
    reindex.set_defaults(func=cmd_ticket_reindex)

    purge = sub.add_parser(
        "purge", help="apply the retention periods of data/shop.toml [retention] (daily)"
    )
    purge.add_argument("--dry-run", action="store_true", help="count what would go, change nothing")
    purge.add_argument("--quiet", action="store_true", help="no progress bars")
    purge.set_defaults(func=cmd_purge)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args, Settings()))


if __name__ == "__main__":
    sys.exit(main())
