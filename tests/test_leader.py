"""Background work runs in exactly one process, and another takes over when it dies (issue 13).

The PostgreSQL test starts two real ``main.py serve`` processes (two "machines": separate
``var/`` folders, one database), kills the leader with SIGKILL and watches the other take
the advisory lock, write the heartbeat and bind the inbound SMTP port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from helpdesk import db
from helpdesk.db import async_url
from helpdesk.leader import Leadership, read_heartbeat
from helpdesk.models import InboundMail, JobRun
from helpdesk.scheduler import TOKYO, Scheduler, claim
from helpdesk.settings import ROOT, Settings
from tests.conftest import PG_URL, _reset_postgres
from tests.helpers import deliver, free_port, mail

postgres_only = pytest.mark.skipif(not PG_URL, reason="HELPDESK_TEST_DATABASE_URL is not set")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _serve(tmp_path: Path, name: str, port: int, smtp_port: int) -> subprocess.Popen[bytes]:
    assert PG_URL
    env = {
        **os.environ,
        "HELPDESK_VAR_DIR": str(tmp_path / name),
        "HELPDESK_DATABASE_URL": PG_URL,
        "HELPDESK_SECRET_KEY": "leader-test-secret",
        "HELPDESK_BASE_URL": "http://127.0.0.1:8000",
        "HELPDESK_INBOUND_SMTP_PORT": str(smtp_port),
    }
    command = [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(port)]
    with (tmp_path / f"{name}.log").open("w") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.2)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


async def _holder() -> tuple[str, float] | None:
    assert PG_URL
    engine = db.create_engine(PG_URL)
    try:
        row = await read_heartbeat(db.session_factory(engine))
    finally:
        await engine.dispose()
    if row is None:
        return None
    return row.holder, (datetime.now(UTC) - db.as_utc(row.heartbeat_at)).total_seconds()


def _leader_pid() -> int | None:
    found = asyncio.run(_holder())
    if found is None or found[1] > 10:
        return None
    return int(found[0].rsplit(":", 1)[1])


@postgres_only
def test_another_process_takes_over_when_the_leader_is_killed(tmp_path: Path) -> None:
    assert PG_URL
    asyncio.run(_reset_postgres(PG_URL))
    smtp_port = free_port()
    ports = {"a": free_port(), "b": free_port()}
    servers = {name: _serve(tmp_path, name, port, smtp_port) for name, port in ports.items()}
    try:
        for name, port in ports.items():
            _wait_for(lambda port=port: _answers(port), 60, f"server {name} answers")
        _wait_for(lambda: _leader_pid() is not None, 20, "a leader")
        leader_pid = _leader_pid()
        by_pid = {server.pid: name for name, server in servers.items()}
        assert leader_pid in by_pid, (leader_pid, by_pid)
        leader = by_pid[leader_pid]
        follower = "b" if leader == "a" else "a"
        _wait_for(lambda: _port_open(smtp_port), 20, "the leader receives mail")
        # Both ready: the background work is alive for the deployment, whoever runs it.
        for port in ports.values():
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
        # The follower runs none of it (it would have failed to bind the port otherwise).
        time.sleep(1)
        assert "receiving mail by SMTP" not in (tmp_path / f"{follower}.log").read_text()

        servers[leader].send_signal(signal.SIGKILL)
        servers[leader].wait(timeout=10)
        killed_at = time.monotonic()
        _wait_for(lambda: _leader_pid() == servers[follower].pid, 20, "the follower takes over")
        _wait_for(lambda: _port_open(smtp_port), 20, "the new leader receives mail")
        took = time.monotonic() - killed_at
        print(f"takeover after SIGKILL: {took:.1f} s")
        assert took < 15, took
        follower_log = (tmp_path / f"{follower}.log").read_text()
        assert "receiving mail by SMTP" in follower_log, follower_log

        # Mail reaches the new leader's receiver and is stored.
        message = mail("hanako@example.jp", "support@example.jp", "引き継ぎ", "届きますか")
        asyncio.run(deliver(smtp_port, message))

        async def stored() -> int:
            engine = db.create_engine(PG_URL)  # type: ignore[arg-type]
            try:
                async with db.session_factory(engine)() as session:
                    return int(
                        (
                            await session.execute(select(func.count()).select_from(InboundMail))
                        ).scalar_one()
                    )
            finally:
                await engine.dispose()

        assert asyncio.run(stored()) == 1
        ready = httpx.get(f"http://127.0.0.1:{ports[follower]}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
    finally:
        for server in servers.values():
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=20)


async def _sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = db.create_engine(f"sqlite:///{tmp_path / 'var' / 'helpdesk.db'}")
    await db.migrate(engine)
    return engine, db.session_factory(engine)


async def test_on_sqlite_one_process_leads_and_the_next_takes_over(tmp_path: Path) -> None:
    engine, sessions = await _sessions(tmp_path)
    url = f"sqlite:///{tmp_path / 'var' / 'helpdesk.db'}"
    events: list[str] = []

    def candidate(name: str) -> Leadership:
        async def elected() -> None:
            events.append(f"{name} elected")

        async def deposed() -> None:
            events.append(f"{name} deposed")

        return Leadership(
            url,
            lock_path=tmp_path / "var" / "leader.lock",
            sessions=sessions,
            on_elected=elected,
            on_deposed=deposed,
            retry_interval=0.05,
            check_interval=0.05,
        )

    first, second = candidate("first"), candidate("second")
    first_task = asyncio.create_task(first.run())
    await asyncio.sleep(0.2)
    second_task = asyncio.create_task(second.run())
    await asyncio.sleep(0.3)
    assert events == ["first elected"]
    assert first.is_leader and not second.is_leader
    row = await read_heartbeat(sessions)
    assert row is not None and row.holder == first.holder

    first_task.cancel()
    await asyncio.gather(first_task, return_exceptions=True)
    for _ in range(200):  # 10 s at most: a loaded machine
        if len(events) == 3:  # elected, heartbeat written, work started
            break
        await asyncio.sleep(0.05)
    assert events == ["first elected", "first deposed", "second elected"]
    second_task.cancel()
    await asyncio.gather(second_task, return_exceptions=True)
    assert events[-1] == "second deposed"
    await engine.dispose()


@postgres_only
async def test_a_leader_whose_lock_connection_is_cut_stops_its_work() -> None:
    """The re-check notices a lost lock (here: the session terminated by an admin)."""
    assert PG_URL
    await _reset_postgres(PG_URL)
    engine = db.create_engine(PG_URL)
    await db.migrate(engine)
    sessions = db.session_factory(engine)
    events: list[str] = []

    async def elected() -> None:
        events.append("elected")

    async def deposed() -> None:
        events.append("deposed")

    leadership = Leadership(
        PG_URL,
        lock_path=Path("/nonexistent"),
        sessions=sessions,
        on_elected=elected,
        on_deposed=deposed,
        retry_interval=0.1,
        check_interval=0.2,
    )
    task = asyncio.create_task(leadership.run())
    try:
        for _ in range(50):
            if events:
                break
            await asyncio.sleep(0.1)
        assert events == ["elected"]
        admin = create_async_engine(async_url(PG_URL))
        async with admin.begin() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND objid = :id"
                ),
                {"id": 0x6D61646C},
            )
        await admin.dispose()
        for _ in range(50):
            if events[-1:] == ["elected"] and len(events) >= 3:
                break
            await asyncio.sleep(0.1)
        # Deposed at the next check, then elected again on a new connection.
        assert events[:3] == ["elected", "deposed", "elected"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


async def test_a_daily_job_runs_once_a_day_whoever_leads(tmp_path: Path) -> None:
    engine, sessions = await _sessions(tmp_path)
    ran: list[str] = []
    helpdesk = SimpleNamespace(sessions=sessions)  # what the scheduler uses of the app

    async def purge(_helpdesk: object) -> None:
        ran.append("purge")

    async def broken(_helpdesk: object) -> None:
        raise RuntimeError("disk full")

    scheduler = Scheduler()
    scheduler.register_daily("purge", purge, hour=3)
    scheduler.register_daily("broken", broken, hour=3)
    with pytest.raises(ValueError):
        scheduler.register_daily("purge", purge)
    early = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # 02:00 in Tokyo on the 2nd
    assert await scheduler.run_due(helpdesk, holder="a", now=early) == []  # type: ignore[arg-type]
    later = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)  # 04:00 in Tokyo
    # Two leaders overlapping in a handover: the job runs in one of them.
    first, second = await asyncio.gather(
        scheduler.run_due(helpdesk, holder="a", now=later),  # type: ignore[arg-type]
        scheduler.run_due(helpdesk, holder="b", now=later),  # type: ignore[arg-type]
    )
    assert sorted(first + second) == ["broken", "purge"]
    assert ran == ["purge"]
    next_day = datetime(2026, 12, 2, 19, 0, tzinfo=UTC)
    assert sorted(await scheduler.run_due(helpdesk, holder="b", now=next_day)) == [  # type: ignore[arg-type]
        "broken",
        "purge",
    ]
    async with sessions() as session:
        runs = (await session.execute(select(JobRun).order_by(JobRun.id))).scalars().all()
    assert [(r.name, str(r.day)) for r in runs if r.name == "purge"] == [
        ("purge", "2026-12-02"),
        ("purge", "2026-12-03"),
    ]
    assert all(r.finished_at is not None for r in runs)
    assert {r.error for r in runs if r.name == "broken"} == {"RuntimeError: disk full"}
    await engine.dispose()


async def test_a_daily_job_cut_off_by_a_crash_is_run_again_once_by_the_next_leader(
    tmp_path: Path,
) -> None:
    engine, sessions = await _sessions(tmp_path)
    ran: list[str] = []
    helpdesk = SimpleNamespace(sessions=sessions)  # what the scheduler uses of the app

    async def purge(_helpdesk: object) -> None:
        ran.append("purge")

    scheduler = Scheduler()
    scheduler.register_daily("purge", purge, hour=3)
    later = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)  # 04:00 in Tokyo on the 2nd
    # Leader "a" claimed today's run and died in the middle of it.
    assert await claim(sessions, "purge", later.astimezone(TOKYO).date(), "a") is not None
    # "b" leads now: within the grace it leaves the run alone (a cut-off "a" may still stop).
    assert await scheduler.run_due(helpdesk, holder="b", now=later) == []  # type: ignore[arg-type]
    # After the grace, "b" takes it over, and two takers do not both run it.
    first, second = await asyncio.gather(
        scheduler.run_due(helpdesk, holder="b", now=later, take_over=True),  # type: ignore[arg-type]
        scheduler.run_due(helpdesk, holder="c", now=later, take_over=True),  # type: ignore[arg-type]
    )
    assert sorted(first + second) == ["purge"] and ran == ["purge"]
    async with sessions() as session:
        [run] = (await session.execute(select(JobRun))).scalars().all()
        assert run.finished_at is not None and run.attempts == 2 and run.holder in ("b", "c")
        # Cut off again: a job that kills its process does not kill every leader after it.
        run.finished_at = None
        await session.commit()
    assert await scheduler.run_due(helpdesk, holder="d", now=later, take_over=True) == []  # type: ignore[arg-type]
    # A finished run is never taken over.
    assert ran == ["purge"]
    await engine.dispose()


def test_production_settings_are_required_on_postgresql(tmp_path: Path) -> None:
    pg = "postgresql://postgres@127.0.0.1/x"
    bare = Settings(_env_file=None, var_dir=tmp_path, database_url=pg)
    problems = bare.production_problems()
    assert len(problems) == 2
    assert "HELPDESK_SECRET_KEY" in problems[0] and "HELPDESK_BASE_URL" in problems[1]
    full = Settings(
        _env_file=None, var_dir=tmp_path, database_url=pg, secret_key="s", base_url="https://x.jp"
    )
    assert full.production_problems() == []
    # SQLite (one machine) runs with no setup.
    assert Settings(_env_file=None, var_dir=tmp_path).production_problems() == []


def test_serve_refuses_to_start_on_postgresql_without_a_secret_key(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HELPDESK_VAR_DIR": str(tmp_path / "var"),
        "HELPDESK_DATABASE_URL": "postgresql://postgres@127.0.0.1/nothing",
        "HELPDESK_BASE_URL": "https://help.example.jp",
    }
    env.pop("HELPDESK_SECRET_KEY", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    assert "HELPDESK_SECRET_KEY is not set" in done.stderr
    assert not (tmp_path / "var" / "secret_key").exists()


def test_typed_settings_refuse_unknown_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="smtp_security"):
        Settings(_env_file=None, smtp_security="ssl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_format"):
        Settings(_env_file=None, log_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="HELPDESK_METRICS_ALLOW"):
        Settings(_env_file=None, metrics_allow="prometheus.local")


async def test_a_new_leader_sends_what_its_predecessor_had_claimed(app) -> None:  # type: ignore[no-untyped-def]
    """Not after the 5-minute lease: a handover left the outbox waiting that long."""
    from datetime import timedelta

    from helpdesk.db import utcnow
    from helpdesk.models import Outbox

    helpdesk = app.state.helpdesk
    now = utcnow()

    def row(number: int, lease_until: datetime) -> Outbox:
        return Outbox(
            kind="test",
            to_address=f"c{number}@example.jp",
            subject="件名",
            text="本文",
            message_id=f"m{number}@example.jp",
            status="sending",
            lease_until=lease_until,
        )

    async with helpdesk.sessions() as session:
        # Claimed by the dead leader 10 s before the election; claimed by us just after.
        session.add(row(1, now + timedelta(seconds=290)))
        session.add(row(2, now + timedelta(seconds=301)))
        await session.commit()
    await helpdesk._release_leases(now, grace=0)
    async with helpdesk.sessions() as session:
        rows = (await session.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
    assert db.as_utc(rows[0].lease_until) <= utcnow()  # due: sent at once
    assert db.as_utc(rows[1].lease_until) > now + timedelta(seconds=300)  # ours: untouched


async def test_a_new_leader_processes_the_mail_its_predecessor_was_processing(app) -> None:  # type: ignore[no-untyped-def]
    """Not after the 5-minute lease: an agent's reply caught by a killed leader reached the
    customer five minutes late (bench/workers_bench.py)."""
    from datetime import timedelta

    from helpdesk.db import utcnow
    from helpdesk.mail.inbound import LEASE
    from helpdesk.models import Ticket
    from tests.helpers import SUPPORT

    helpdesk = app.state.helpdesk
    now = utcnow()

    def row(number: int, lease_until: datetime) -> InboundMail:
        raw = mail(f"c{number}@example.jp", SUPPORT, "質問", f"ラッピングはできますか({number})")
        return InboundMail(
            raw=raw.as_bytes(),
            received_at=lease_until - LEASE,
            attempts=1,
            next_attempt_at=lease_until,
        )

    async with helpdesk.sessions() as session:
        # Its run begun by the dead leader 10 s before the election; ours, just after.
        session.add(row(1, now + LEASE - timedelta(seconds=10)))
        session.add(row(2, now + LEASE + timedelta(seconds=1)))
        await session.commit()
    await helpdesk._release_inbound(now, grace=0)
    async with helpdesk.sessions() as session:
        rows = (await session.execute(select(InboundMail).order_by(InboundMail.id))).scalars().all()
        tickets = (await session.execute(select(func.count()).select_from(Ticket))).scalar_one()
    assert (rows[0].status, rows[0].attempts) == ("processed", 2)  # run at once, counted
    assert rows[1].status == "received" and rows[1].attempts == 1  # ours: untouched
    assert db.as_utc(rows[1].next_attempt_at) > now + LEASE
    assert tickets == 1
