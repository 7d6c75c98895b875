"""Run the mail code over other projects' fixtures (``../shared/external/mail-peer/``).

The fixtures and their expected results come from ten other mail projects; the folder's README
gives the format and the comparison rules, which are implemented here exactly:

* everything is compared after NFKC and CR/CRLF -> LF;
* subjects: runs of whitespace -> one space, then equal (``contains`` where so marked);
* bodies: all whitespace and control characters removed, then equal / contained / any-of;
  with ``html_expected`` only letters and digits are compared;
* ``emoji: "ignore"``: ``&#xNNNN;`` references dropped from the expectation and private-use
  characters, ``So`` symbols, U+FFFD and 〓 dropped from our output;
* attachments: the multiset of names (NFKC), U+FFFD in an expected name matches 1-2 characters;
  or only the count (one number, or a list of allowed counts);
* replies, "stripped right": every ``must_contain`` line is in the output, no
  ``must_not_contain`` line is (both compared as bodies are, whitespace removed: this reading
  reproduces the README's published figures), and the text was not read as command lines;
  "exact" (secondary): the whole output equals ``expected_reply``.

Each fixture runs under a 20 s alarm in one worker process started with this interpreter. An
exception is a crash; ``MailParseError`` is counted apart (rejected as not-a-mail).

Run as a script for the table (``.venv/bin/python tests/mail_peer.py [--failures] [--json]``);
``tests/test_mail_peer.py`` asserts the figures.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT.parent / "shared" / "external" / "mail-peer"
ALARM_SECONDS = 20
SLOW_SECONDS = 1.0  # the sources' own timing bound for the robustness fixtures


def load_expectations(peer: Path = PEER) -> list[dict[str, Any]]:
    lines = (peer / "expectations.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# -- the worker: calls the project's entry points, one fixture at a time ------------------------


class _Alarm(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise _Alarm


def _run_project(row: dict[str, Any], peer: Path) -> dict[str, Any]:
    from helpdesk.mail.decode import MailParseError, parse_message
    from helpdesk.mail.reply import parse_reply
    from helpdesk.tickets.commands import Reply

    raw = (peer / row["file"]).read_bytes()
    result: dict[str, Any] = {"id": row["id"]}
    started = time.perf_counter()
    signal.alarm(ALARM_SECONDS)
    try:
        if row["kind"] == "decode":
            mail = parse_message(raw)
            result.update(
                subject=mail.subject,
                text=mail.text,
                attachments=[a.filename for a in mail.attachments],
                from_name=mail.from_name,
            )
        else:
            if row["input"] == "eml":
                text = parse_message(raw).text
            else:
                text = raw.decode("utf-8", "surrogateescape").encode("utf-8", "replace").decode()
            parsed = parse_reply(text)
            result.update(
                body=parsed.body,
                # The reply text itself arrives as a Reply command: count the agent's commands.
                commands=sum(not isinstance(c, Reply) for c in parsed.commands)
                + len(parsed.errors),
            )
        result["outcome"] = "ok"
    except MailParseError as exc:
        result.update(outcome="rejected", error=str(exc))
    except _Alarm:
        result.update(outcome="timeout")
    except Exception as exc:
        result.update(outcome="crash", error=f"{type(exc).__name__}: {exc}")
    finally:
        signal.alarm(0)
    result["seconds"] = time.perf_counter() - started
    return result


def _html_strip(html: str) -> str:
    from html.parser import HTMLParser

    class Strip(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    parser = Strip()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def _run_stdlib(row: dict[str, Any], peer: Path) -> dict[str, Any]:
    """The README's baseline: the stdlib ``email`` package with ``policy.default``."""
    import email
    from email import policy

    raw = (peer / row["file"]).read_bytes()
    result: dict[str, Any] = {"id": row["id"]}
    started = time.perf_counter()
    signal.alarm(ALARM_SECONDS)
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
        subject = msg["subject"]
        body_part = msg.get_body(("plain", "html"))  # type: ignore[attr-defined]
        text = ""
        if body_part is not None:
            text = body_part.get_content()
            if body_part.get_content_subtype() == "html":
                text = _html_strip(text)
        names = []
        for part in msg.walk():
            if part.is_multipart() or part is body_part:
                continue
            name = part.get_filename()
            if name is not None:
                names.append(str(name))
        from_header = msg["from"]
        from_name = ""
        if from_header is not None and getattr(from_header, "addresses", ()):
            from_name = from_header.addresses[0].display_name
        result.update(
            subject="" if subject is None else str(subject),
            text=text,
            attachments=names,
            from_name=from_name,
            outcome="ok",
        )
    except _Alarm:
        result.update(outcome="timeout")
    except Exception as exc:
        result.update(outcome="crash", error=f"{type(exc).__name__}: {exc}")
    finally:
        signal.alarm(0)
    result["seconds"] = time.perf_counter() - started
    return result


def _worker(peer: Path, which: str, skip: int) -> None:
    signal.signal(signal.SIGALRM, _on_alarm)
    rows = load_expectations(peer)
    run = _run_project if which == "project" else _run_stdlib
    for row in rows[skip:]:
        if which == "stdlib" and row["kind"] != "decode":
            continue
        print(json.dumps(run(row, peer), ensure_ascii=False), flush=True)


def run_outputs(peer: Path = PEER, which: str = "project") -> dict[str, dict[str, Any]]:
    """Every fixture's raw output, from a worker process (restarted after a hard crash)."""
    rows = load_expectations(peer)
    ids = [row["id"] for row in rows]
    outputs: dict[str, dict[str, Any]] = {}
    position = 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    while position < len(rows):
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", str(peer), which, str(position)],
            capture_output=True,
            cwd=ROOT,
            env=env,
            check=False,
        )
        for line in proc.stdout.decode("utf-8").splitlines():
            found = json.loads(line)
            outputs[found["id"]] = found
        done = max((ids.index(i) for i in outputs), default=-1)
        if proc.returncode == 0:
            break
        # The worker died inside the fixture after the last one it reported.
        failed = done + 1
        if which == "stdlib":
            while failed < len(rows) and rows[failed]["kind"] != "decode":
                failed += 1
        if failed < len(rows):
            outputs[ids[failed]] = {
                "id": ids[failed],
                "outcome": "crash",
                "error": f"worker exited with {proc.returncode}: {proc.stderr[-500:]!r}",
                "seconds": 0.0,
            }
        position = failed + 1
    return outputs


# -- the comparison rules -------------------------------------------------------------------------


def _norm(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFKC", text)


_ENTITY = re.compile(r"&#x[0-9A-Fa-f]+;")


def _drop_emoji(text: str) -> str:
    return "".join(
        c for c in text if unicodedata.category(c) not in ("Co", "So") and c not in ("\ufffd", "〓")
    )


def _subject_form(text: str) -> str:
    return re.sub(r"\s+", " ", _norm(text)).strip()


def _body_form(text: str, *, html: bool) -> str:
    text = _norm(text)
    if html:
        return "".join(c for c in text if c.isalnum())
    return "".join(c for c in text if not c.isspace() and unicodedata.category(c) != "Cc")


def _names_match(expected: list[str], got: list[str]) -> bool:
    want = [_norm(name) for name in expected]
    have = [_norm(name) for name in got]
    if len(want) != len(have):
        return False
    patterns = [
        re.compile("".join(".{1,2}" if c == "\ufffd" else re.escape(c) for c in name), re.DOTALL)
        for name in want
    ]

    def assign(index: int, free: list[str]) -> bool:
        if index == len(patterns):
            return True
        for k, name in enumerate(free):
            if patterns[index].fullmatch(name) and assign(index + 1, free[:k] + free[k + 1 :]):
                return True
        return False

    return assign(0, have)


@dataclass
class Verdict:
    id: str
    kind: str
    category: str
    outcome: str
    checks: dict[str, bool] = field(default_factory=dict)
    lost_own_text: bool = False
    slow: bool = False
    detail: list[str] = field(default_factory=list)


def judge(row: dict[str, Any], out: dict[str, Any]) -> Verdict:
    verdict = Verdict(row["id"], row["kind"], row["category"], out.get("outcome", "crash"))
    ok = verdict.outcome == "ok"
    verdict.slow = out.get("seconds", 0.0) > SLOW_SECONDS
    if row["kind"] == "decode":
        emoji = row.get("emoji") == "ignore"

        def ours(text: str) -> str:
            return _drop_emoji(text) if emoji else text

        def theirs(text: str) -> str:
            return _ENTITY.sub("", text) if emoji else text

        if "subject" in row:
            good = False
            if ok:
                want = _subject_form(theirs(row["subject"]))
                have = _subject_form(ours(out["subject"]))
                good = have == want if row.get("subject_mode") != "contains" else want in have
                if not good:
                    verdict.detail.append(f"subject {have!r} != {want!r}")
            verdict.checks["subject"] = good
        if any(key in row for key in ("body_exact", "body_contains", "body_any")):
            good = False
            if ok:
                html = bool(row.get("html_expected"))
                have = _body_form(ours(out["text"]), html=html)
                if "body_exact" in row:
                    good = have == _body_form(theirs(row["body_exact"]), html=html)
                elif "body_contains" in row:
                    good = all(
                        _body_form(theirs(item), html=html) in have for item in row["body_contains"]
                    )
                else:
                    good = any(
                        _body_form(theirs(item), html=html) in have for item in row["body_any"]
                    )
                if not good:
                    verdict.detail.append(f"body {out['text'][:300]!r}")
            verdict.checks["body"] = good
        if "attachments" in row or "attachment_count" in row:
            good = False
            if ok:
                if "attachments" in row:
                    good = _names_match(row["attachments"], out["attachments"])
                else:
                    count = row["attachment_count"]
                    allowed = count if isinstance(count, list) else [count]
                    good = len(out["attachments"]) in allowed
                if not good:
                    verdict.detail.append(f"attachments {out['attachments']!r}")
            verdict.checks["attachments"] = good
        if "from_name" in row:
            good = ok and _subject_form(out["from_name"]) == _subject_form(row["from_name"])
            verdict.checks["from_name"] = good
        return verdict

    if row["convention"] == "timing only":
        return verdict
    # Lines are compared as bodies are: whitespace and control characters removed.
    body = _body_form(out.get("body", ""), html=False) if ok else ""
    missing = [line for line in row["must_contain"] if _body_form(line, html=False) not in body]
    leaked = [line for line in row["must_not_contain"] if _body_form(line, html=False) in body]
    commands = ok and out.get("commands", 0) > 0
    verdict.lost_own_text = bool(missing) or commands or not ok
    verdict.checks["reply"] = ok and not missing and not leaked and not commands
    if "expected_reply" in row:
        verdict.checks["exact"] = (
            ok and _norm(out["body"]).strip() == _norm(row["expected_reply"]).strip()
        )
    if missing:
        verdict.detail.append(f"lost {missing!r}")
    if leaked:
        verdict.detail.append(f"kept quoted {leaked[:3]!r}")
    if commands:
        verdict.detail.append("read as commands")
    return verdict


def judge_all(
    outputs: dict[str, dict[str, Any]],
    peer: Path = PEER,
    kinds: tuple[str, ...] = ("decode", "reply"),
) -> list[Verdict]:
    return [
        judge(row, outputs.get(row["id"], {"outcome": "crash", "error": "no output"}))
        for row in load_expectations(peer)
        if row["kind"] in kinds
    ]


@dataclass
class Figures:
    passed: Counter[str]
    total: Counter[str]
    crashes: int
    rejected: int
    lost_own_text: int
    slow: list[str]
    by_category: dict[str, tuple[Counter[str], Counter[str]]]


def figures(verdicts: list[Verdict]) -> Figures:
    passed: Counter[str] = Counter()
    total: Counter[str] = Counter()
    by_category: dict[str, tuple[Counter[str], Counter[str]]] = {}
    for verdict in verdicts:
        cat_passed, cat_total = by_category.setdefault(verdict.category, (Counter(), Counter()))
        for check, good in verdict.checks.items():
            total[check] += 1
            cat_total[check] += 1
            if good:
                passed[check] += 1
                cat_passed[check] += 1
    return Figures(
        passed=passed,
        total=total,
        crashes=sum(v.outcome in ("crash", "timeout") for v in verdicts),
        rejected=sum(v.outcome == "rejected" for v in verdicts),
        lost_own_text=sum(v.lost_own_text for v in verdicts),
        slow=[v.id for v in verdicts if v.slow],
        by_category=by_category,
    )


def _fraction(f: Figures, check: str) -> str:
    return f"{f.passed[check]}/{f.total[check]}"


def report(project: Figures, stdlib: Figures | None) -> str:
    lines = [
        "| | subjects | bodies | attachments | replies stripped right | replies exact "
        "| lose own text | crashes | rejected | slow (> 1 s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in (("project", project), ("stdlib", stdlib)):
        if f is None:
            continue
        reply = _fraction(f, "reply") if f.total["reply"] else "-"
        exact = _fraction(f, "exact") if f.total["exact"] else "-"
        lost = str(f.lost_own_text) if f.total["reply"] else "-"
        lines.append(
            f"| {name} | {_fraction(f, 'subject')} | {_fraction(f, 'body')} "
            f"| {_fraction(f, 'attachments')} | {reply} | {exact} | {lost} | {f.crashes} "
            f"| {f.rejected} | {len(f.slow)} |"
        )
    lines.append("")
    parts = []
    for category, (passed, total) in sorted(project.by_category.items()):
        checks = [c for c in ("subject", "body", "attachments", "reply") if total[c]]
        parts.append(f"{category} " + " ".join(f"{passed[c]}/{total[c]}" for c in checks))
    lines.append("per category (subject body attachments | reply): " + ";  ".join(parts))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        _worker(Path(argv[1]), argv[2], int(argv[3]))
        return 0
    if not PEER.exists():
        print(f"{PEER} is absent", file=sys.stderr)
        return 1
    project_verdicts = judge_all(run_outputs(PEER, "project"))
    stdlib_verdicts = judge_all(run_outputs(PEER, "stdlib"), kinds=("decode",))
    project = figures(project_verdicts)
    print(report(project, figures(stdlib_verdicts)))
    if "--failures" in argv:
        print()
        for verdict in project_verdicts:
            failed = [check for check, good in verdict.checks.items() if not good]
            if failed or verdict.outcome != "ok":
                print(f"- {verdict.id} [{verdict.outcome}] {failed}: {' | '.join(verdict.detail)}")
    if "--json" in argv:
        print(
            json.dumps(
                {
                    check: [project.passed[check], project.total[check]]
                    for check in sorted(project.total)
                }
                | {"crashes": project.crashes, "lost_own_text": project.lost_own_text}
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
