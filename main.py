#!/usr/bin/env python3
"""madoguchi's command line: serve, ask, faq import/check/gaps."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from helpdesk.settings import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from helpdesk.app import create_app

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
    print(f"madoguchi: http://{args.host}:{args.port}/", flush=True)
    print(f"  links in mails: {settings.base_url}", flush=True)
    print(f"  database: {settings.resolved_database_url}", flush=True)
    if settings.smtp_host:
        print(f"  mail: sent through {settings.smtp_host}:{settings.smtp_port}", flush=True)
    else:
        print(f"  mail: no HELPDESK_SMTP_HOST, written to {settings.mail_dir}/", flush=True)
    if settings.inbound_smtp_port:
        print(f"  receiving mail on 127.0.0.1:{settings.inbound_smtp_port}", flush=True)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="info",
    )
    return 0


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from faq import SearchEngine, load_entries, load_policy

    policy = load_policy(settings.data_dir / "shop.toml")
    return SearchEngine(load_entries(settings.data_dir / "faq"), policy=policy)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from helpdesk.faq_service import MAX_RESULTS, answer_json, answer_text

    engine = _engine(settings)
    queries = [args.query] if args.query is not None else (line.rstrip("\n") for line in sys.stdin)
    for query in queries:
        answer = engine.ask(query, limit=MAX_RESULTS)
        text = answer_text(answer)
        if args.json:
            print(json.dumps(answer_json(answer, text), ensure_ascii=False), flush=True)
            continue
        print(f"Q: {query}")
        if answer.answered:
            print(f"A: {text}\n   (確信度 {answer.confidence:.2f}, {answer.entry.id})")
        else:
            print("A: ぴったりの回答が見つかりませんでした。お問い合わせフォームをご利用ください。")
            for hit in answer.suggestions:
                print(f"   候補: {hit.entry.question} ({hit.entry.id})")
        print(flush=True)
    return 0


def cmd_faq_check(args: argparse.Namespace, settings: Settings) -> int:
    from faq import KnowledgeBaseError, PolicyError, load_entries, load_policy

    try:
        policy = load_policy(settings.data_dir / "shop.toml")
        entries = load_entries(settings.data_dir / "faq")
    except (KnowledgeBaseError, PolicyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    categories = sorted({e.category or "-" for e in entries})
    print(f"ok: {len(entries)} entries in {len(categories)} categories ({', '.join(categories)})")
    print(f"ok: shop policy of {policy.name}")
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

    from helpdesk.app import Helpdesk, jst
    from helpdesk.models import InboundMail, Outbox

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            async with helpdesk.sessions() as session:  # type: ignore[misc]
                counts = await session.execute(
                    select(Outbox.status, func.count()).group_by(Outbox.status)
                )
                print("outbox:", ", ".join(f"{s} {n}" for s, n in counts.all()) or "empty")
                dead = await session.execute(select(Outbox).where(Outbox.status == "dead"))
                for row in dead.scalars():
                    print(f"  dead #{row.id} to {row.to_address}: {row.subject} ({row.last_error})")
                inbound = await session.execute(
                    select(InboundMail)
                    .where(InboundMail.status.in_(("failed", "received", "retry")))
                    .order_by(InboundMail.id)
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


def cmd_agent_add(args: argparse.Namespace, settings: Settings) -> int:
    from helpdesk.app import Helpdesk

    async def run() -> int:
        helpdesk = Helpdesk(settings)
        await helpdesk.startup()
        try:
            agent = await helpdesk.tickets.add_agent(args.email, args.name or "")
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            await helpdesk.shutdown()
        print(f"agent {agent.name} <{agent.email}> registered")
        return 0

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="madoguchi helpdesk")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    ask = sub.add_parser("ask", help="ask the FAQ bot (one query, or one a line on stdin)")
    ask.add_argument("--json", action="store_true", help="one JSON object per answer")
    ask.add_argument("query", nargs="?")
    ask.set_defaults(func=cmd_ask)

    faq = sub.add_parser("faq", help="manage the knowledge base").add_subparsers(
        dest="faq_command", required=True
    )
    check = faq.add_parser("check", help="validate data/faq and data/shop.toml")
    check.set_defaults(func=cmd_faq_check)
    imp = faq.add_parser("import", help="import CSV (question,answer,category,tags) or JSONL")
    imp.add_argument("file")
    imp.add_argument("--into", help="TOML file to append to (default data/faq/imported.toml)")
    imp.set_defaults(func=cmd_faq_import)
    gaps = faq.add_parser("gaps", help="questions the FAQ could not answer with confidence")
    gaps.add_argument("--limit", type=int, default=50)
    gaps.set_defaults(func=cmd_faq_gaps)

    mail = sub.add_parser("mail", help="e-mail").add_subparsers(dest="mail_command", required=True)
    ingest = mail.add_parser("ingest", help="read one message from standard input (MTA pipe)")
    ingest.add_argument("--sender", help="envelope sender")
    ingest.add_argument("--recipient", action="append", help="envelope recipient (repeatable)")
    ingest.set_defaults(func=cmd_mail_ingest)
    send = mail.add_parser("send-queued", help="send the mail waiting in the outbox (cron)")
    send.set_defaults(func=cmd_mail_send_queued)
    status = mail.add_parser("status", help="outbox counts, dead letters, failed inbound mail")
    status.set_defaults(func=cmd_mail_status)
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
    add = agent.add_parser("add", help="register an agent (replies from this address act)")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.set_defaults(func=cmd_agent_add)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args, Settings()))


if __name__ == "__main__":
    sys.exit(main())
