"""The knowledge base in the console (admins): entries, categories, why a question matches,
and the questions the FAQ could not answer (issue 11, items 1, 3 and 4).

Thin handlers: the rules are in ``helpdesk.kb_store`` (revisions, validation as for the
files), ``helpdesk.faq_gaps`` (groups by meaning) and ``faq.engine`` (``explain_hits``).
A save bumps the knowledge base's version; every worker rebuilds its index within seconds
(``FaqService.watch_data``), this one at once.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from faq.engine import MATCH_KINDS
from faq.kb import DYNAMIC_KINDS, SLUG
from helpdesk.agents.urls import FAQ
from helpdesk.faq_gaps import SOURCE_PREFIX
from helpdesk.faq_service import MAX_RESULTS, QueryError
from helpdesk.kb_store import (
    DRAFT,
    PUBLISHED,
    RETIRED,
    STATUS_LABELS,
    STATUSES,
    EntryForm,
    KnowledgeBase,
    Saved,
)
from helpdesk.models import Agent, Author, TicketStatus
from helpdesk.privacy import mask_personal_data
from helpdesk.security import UNVERIFIED_MESSAGE, verify_csrf
from helpdesk.web.auth import require_agent
from helpdesk.web.console import render

ENTRY_NOT_FOUND = "この質問は見つかりませんでした。"
# Fields of the entry form, the CSRF token and a few more.
MAX_FIELDS = 20
# The gap list shows this many groups.
GAP_GROUPS_SHOWN = 100
DONE_MESSAGES = {
    "saved": "保存しました。数秒ですべてのサーバーの回答に反映されます。",
    "phrasing": "言い換えとして追加しました。数秒で回答に反映されます。",
    "synonym": "同義語を追加しました。数秒で回答に反映されます。",
    "category": "カテゴリーを保存しました。",
    "status": "状態を変更しました。",
    "draft": "チケットから下書きを作りました。内容を整えて公開してください。",
}


def _helpdesk(request: Request) -> Any:
    return request.app.state.helpdesk


async def _admin(request: Request) -> Agent:
    agent: Agent = await require_agent(request, admin=True)
    return agent


async def _form(request: Request) -> FormData:
    """The posted form, its CSRF token checked (403 without it). First in every unsafe
    handler: even the way to the login page is refused without a verified token."""
    form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    if not await verify_csrf(request, form):
        raise HTTPException(403, UNVERIFIED_MESSAGE)
    return form


def _text(form: FormData, name: str, limit: int = 20_000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _kb(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase = await _helpdesk(request).faq.store.load()
    return kb


def _done(request: Request) -> str | None:
    return DONE_MESSAGES.get(request.query_params.get("done", ""))


def _saved(request: Request) -> None:
    """This worker rebuilds at once; the others within ``faq_reload_seconds``."""
    _helpdesk(request).faq.request_reload()


def _page(
    request: Request,
    agent: Agent,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> Response:
    response = render(
        request,
        agent,
        template,
        {"status_labels": STATUS_LABELS, "done": _done(request), **context},
        section="faq",
    )
    response.status_code = status_code
    return response


# -- entries ---------------------------------------------------------------------------------


async def faq_list(request: Request) -> Response:
    agent = await _admin(request)
    helpdesk = _helpdesk(request)
    kb = await _kb(request)
    shown = request.query_params.get("status", "")
    items = [e for e in kb.entries.values() if not shown or e.status == shown]
    names = {c.key: c.name for c in kb.live_categories()}
    by_category: dict[str, list[Any]] = {name: [] for name in names.values()}
    for item in items:
        name = kb.category_name(item.entry.category) or "(カテゴリーなし)"
        by_category.setdefault(name, []).append(item)
    context = {
        "by_category": {k: v for k, v in by_category.items() if v},
        "counts": {s: sum(e.status == s for e in kb.entries.values()) for s in STATUSES},
        "shown": shown,
        "votes": await helpdesk.faq.feedback_totals(),
        "recent": await helpdesk.faq.store.recent(limit=20),
        "served_version": helpdesk.faq.version,
        "kb_version": kb.version,
    }
    return _page(request, agent, "console/faq/list.html", context)


def _form_context(
    kb: KnowledgeBase, form: EntryForm, *, new: bool, base: int | None, source: str = ""
) -> dict[str, Any]:
    return {
        "form": form,
        "new": new,
        "base": "" if base is None else base,
        "source": source,
        "categories": kb.live_categories(),
        "dynamic_kinds": sorted(DYNAMIC_KINDS),
        "statuses": STATUSES,
    }


def _entry_form(form: FormData, *, entry_id: str | None = None) -> EntryForm:
    return EntryForm(
        id=entry_id if entry_id is not None else _text(form, "id", 200),
        question=_text(form, "question", 1000),
        alternatives=_text(form, "alternatives"),
        category=_text(form, "category", 200),
        tags=_text(form, "tags", 2000),
        answer=_text(form, "answer"),
        dynamic=_text(form, "dynamic", 50),
        status=_text(form, "status", 20) or PUBLISHED,
    )


def _refused(
    request: Request, agent: Agent, kb: KnowledgeBase, saved: Saved, context: dict[str, Any]
) -> Response:
    """The form again, as the admin typed it, with every problem (422)."""
    errors = [message for _, message in saved.problems]
    fields = {name for name, _ in saved.problems if name}
    context = {**context, "errors": errors, "error_fields": fields}
    return _page(request, agent, "console/faq/entry.html", context, status_code=422)


async def entry_new(request: Request) -> Response:
    """A new entry; ``?question=&alternatives=&source=`` prefill it (from a gap group)."""
    agent = await _admin(request)
    kb = await _kb(request)
    params = request.query_params
    live = kb.live_categories()
    form = EntryForm(
        id=params.get("id", "")[:100],
        question=params.get("question", "")[:1000],
        alternatives=params.get("alternatives", "")[:5000],
        category=params.get("category", "") or (live[0].key if live else ""),
        answer=params.get("answer", "")[:20_000],
        status=params.get("status", PUBLISHED) if params.get("status") in STATUSES else PUBLISHED,
    )
    if not form.id and form.question:
        form.id = suggest_id(kb, form.category)
    context = _form_context(kb, form, new=True, base=None, source=params.get("source", "")[:200])
    return _page(request, agent, "console/faq/entry.html", context)


async def entry_create(request: Request) -> Response:
    form_data = await _form(request)
    agent = await _admin(request)
    kb = await _kb(request)
    form = _entry_form(form_data)
    source = _text(form_data, "source", 200) or None
    saved = await _helpdesk(request).faq.store.save_entry(
        form, agent=agent, kb=kb, new=True, base=None, source=source
    )
    if not saved.ok:
        context = _form_context(kb, form, new=True, base=None, source=source or "")
        return _refused(request, agent, kb, saved, context)
    _saved(request)
    urls = _helpdesk(request).console_urls
    return RedirectResponse(f"{urls.faq_entry(form.id.strip())}?done=saved", status_code=303)


async def entry_page(request: Request) -> Response:
    agent = await _admin(request)
    helpdesk = _helpdesk(request)
    kb = await _kb(request)
    item = kb.entries.get(request.path_params["entry_id"])
    if item is None:
        raise HTTPException(404, ENTRY_NOT_FOUND)
    form = EntryForm.from_entry(item.entry, item.status)
    base = item.revision.id if item.revision else None
    context = {
        **_form_context(kb, form, new=False, base=base),
        "item": item,
        "history": await helpdesk.faq.store.history("entry", item.entry.id),
        "votes": (await helpdesk.faq.feedback_totals()).get(item.entry.id, (0, 0)),
    }
    return _page(request, agent, "console/faq/entry.html", context)


def _base(form: FormData) -> int | None:
    value = _text(form, "base", 20)
    return int(value) if value.isdigit() else None


async def entry_save(request: Request) -> Response:
    form_data = await _form(request)
    agent = await _admin(request)
    helpdesk = _helpdesk(request)
    kb = await _kb(request)
    entry_id = request.path_params["entry_id"]
    item = kb.entries.get(entry_id)
    if item is None:
        raise HTTPException(404, ENTRY_NOT_FOUND)
    form = _entry_form(form_data, entry_id=entry_id)
    base = _base(form_data)
    saved = await helpdesk.faq.store.save_entry(form, agent=agent, kb=kb, new=False, base=base)
    if not saved.ok:
        context = {
            **_form_context(kb, form, new=False, base=base),
            "item": item,
            "history": await helpdesk.faq.store.history("entry", entry_id),
            "votes": (await helpdesk.faq.feedback_totals()).get(entry_id, (0, 0)),
        }
        return _refused(request, agent, kb, saved, context)
    _saved(request)
    return RedirectResponse(
        f"{helpdesk.console_urls.faq_entry(entry_id)}?done=saved", status_code=303
    )


async def entry_status(request: Request) -> Response:
    """Publish, retire or turn back into a draft (the content unchanged)."""
    form_data = await _form(request)
    agent = await _admin(request)
    helpdesk = _helpdesk(request)
    kb = await _kb(request)
    entry_id = request.path_params["entry_id"]
    item = kb.entries.get(entry_id)
    if item is None:
        raise HTTPException(404, ENTRY_NOT_FOUND)
    status = _text(form_data, "status", 20)
    if status not in STATUSES:
        saved = Saved(None, (("status", "状態を選んでください。"),))
    else:
        saved = await helpdesk.faq.store.set_status(
            item, status, agent=agent, base=_base(form_data)
        )
    if not saved.ok:
        context = {
            **_form_context(
                kb,
                EntryForm.from_entry(item.entry, item.status),
                new=False,
                base=item.revision.id if item.revision else None,
            ),
            "item": item,
            "history": await helpdesk.faq.store.history("entry", entry_id),
            "votes": (await helpdesk.faq.feedback_totals()).get(entry_id, (0, 0)),
        }
        return _refused(request, agent, kb, saved, context)
    _saved(request)
    return RedirectResponse(
        f"{helpdesk.console_urls.faq_entry(entry_id)}?done=status", status_code=303
    )


def suggest_id(kb: KnowledgeBase, category: str | None, prefix: str = "") -> str:
    """A free id for a new entry: ``prefix``, else the slug of its category's first file
    entry (shipping-..., payment-...) or ``faq``, and a number."""
    if not prefix:
        prefix = "faq"
        for item in kb.entries.values():
            if item.entry.category == category and "-" in item.entry.id:
                prefix = item.entry.id.split("-")[0]
                break
    prefix = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-") or "faq"
    number = 1
    while f"{prefix}-{number}" in kb.entries:
        number += 1
    candidate = f"{prefix}-{number}"
    return candidate if SLUG.match(candidate) else f"faq-{number}"


# -- categories ------------------------------------------------------------------------------


async def categories_page(request: Request) -> Response:
    agent = await _admin(request)
    kb = await _kb(request)
    return _categories(request, agent, kb, {})


def _categories(
    request: Request,
    agent: Agent,
    kb: KnowledgeBase,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> Response:
    used: dict[str, int] = {}
    for item in kb.entries.values():
        if item.status == PUBLISHED and item.entry.category is not None:
            used[item.entry.category] = used.get(item.entry.category, 0) + 1
    categories = sorted(kb.categories.values(), key=lambda c: (c.retired, c.position))
    context = {"categories": categories, "used": used, **context}
    return _page(request, agent, "console/faq/categories.html", context, status_code=status_code)


async def category_save(request: Request) -> Response:
    """Create (no ``key``), rename, move or retire a category."""
    form = await _form(request)
    agent = await _admin(request)
    helpdesk = _helpdesk(request)
    kb = await _kb(request)
    key = _text(form, "key", 200) or None
    name = _text(form, "name", 200)
    position_text = _text(form, "position", 10)
    position = int(position_text) if position_text.isdigit() else None
    saved = await helpdesk.faq.store.save_category(
        key=key,
        name=name,
        position=position,
        retired=_text(form, "retired", 10) == "1",
        agent=agent,
        kb=kb,
    )
    if not saved.ok:
        context = {
            "errors": [m for _, m in saved.problems],
            "typed": {"key": key or "", "name": name, "position": position_text},
        }
        return _categories(request, agent, kb, context, status_code=422)
    _saved(request)
    return RedirectResponse(f"{helpdesk.console_urls.faq_categories()}?done=category", 303)


# -- why it matched --------------------------------------------------------------------------


async def preview(request: Request) -> Response:
    """An admin types a question and sees what the bot does with it, and why."""
    agent = await _admin(request)
    faq = _helpdesk(request).faq
    raw = request.query_params.get("q")
    context: dict[str, Any] = {"query": raw or "", "kinds": MATCH_KINDS}
    status = 200
    if raw is not None:
        try:
            query = faq.validate(raw)
        except QueryError as exc:
            context["error"] = str(exc)
            status = 400
        else:
            context["explanation"] = faq.engine.explain_hits(query, limit=MAX_RESULTS)
    context["served_version"] = faq.version
    return _page(request, agent, "console/faq/preview.html", context, status_code=status)


# -- from gap to answer ----------------------------------------------------------------------


async def gaps_page(request: Request) -> Response:
    agent = await _admin(request)
    return await _gaps(request, agent, {})


async def _gaps(
    request: Request, agent: Agent, context: dict[str, Any], *, status_code: int = 200
) -> Response:
    helpdesk = _helpdesk(request)
    kb = await _kb(request)
    groups = await helpdesk.faq.gap_groups()
    votes = await helpdesk.faq.feedback_totals()
    entries = {item.entry.id: item for item in kb.entries.values() if item.status != RETIRED}
    unhelpful = sorted(
        (
            (no, yes, entry_id)
            for entry_id, (yes, no) in votes.items()
            if no and entry_id in entries
        ),
        reverse=True,
    )
    context = {
        "groups": groups[:GAP_GROUPS_SHOWN],
        "total_groups": len(groups),
        "votes": votes,
        "entries": entries,
        "choices": sorted(entries.values(), key=lambda e: e.entry.id),
        "unhelpful": unhelpful,
        **context,
    }
    return _page(request, agent, "console/faq/gaps.html", context, status_code=status_code)


async def gap_phrasing(request: Request) -> Response:
    """Add a group's question as another phrasing of an entry."""
    form = await _form(request)
    agent = await _admin(request)
    helpdesk = _helpdesk(request)
    kb = await _kb(request)
    item = kb.entries.get(_text(form, "entry_id", 200))
    group = _text(form, "group", 40)
    if item is None:
        saved = Saved(None, (("entry_id", "言い換えを追加する質問を選んでください。"),))
    else:
        saved = await helpdesk.faq.store.add_phrasing(
            item,
            _text(form, "phrasing", 500),
            agent=agent,
            source=SOURCE_PREFIX + group if group else None,
        )
    if not saved.ok:
        typed = {"group": group, "phrasing": _text(form, "phrasing", 500)}
        context = {"errors": [m for _, m in saved.problems], "typed": typed}
        return await _gaps(request, agent, context, status_code=422)
    _saved(request)
    return RedirectResponse(f"{helpdesk.console_urls.faq_gaps()}?done=phrasing", 303)


async def gap_synonym(request: Request) -> Response:
    """Make a word of a group's question a synonym of a word the knowledge base uses."""
    form = await _form(request)
    agent = await _admin(request)
    helpdesk = _helpdesk(request)
    kb = await _kb(request)
    group = _text(form, "group", 40)
    word, same_as = _text(form, "word", 100), _text(form, "same_as", 100)
    saved = await helpdesk.faq.store.add_synonym(
        word,
        same_as,
        agent=agent,
        kb=kb,
        analyzer=helpdesk.faq.engine.analyzer,
        source=SOURCE_PREFIX + group if group else None,
    )
    if not saved.ok:
        typed = {"group": group, "word": word, "same_as": same_as}
        context = {"errors": [m for _, m in saved.problems], "typed": typed}
        return await _gaps(request, agent, context, status_code=422)
    _saved(request)
    return RedirectResponse(f"{helpdesk.console_urls.faq_gaps()}?done=synonym", 303)


# -- from a resolved ticket ------------------------------------------------------------------

NOT_RESOLVED = "解決済みのチケットだけを、よくある質問の下書きにできます。"
NO_ANSWER = "このチケットには担当者の返信がないため、下書きにできません。"


async def draft_from_ticket(request: Request) -> Response:
    """A resolved ticket as a draft entry: the customer's question, the agent's answer
    (personal data masked); the admin edits and publishes it."""
    await _form(request)
    agent = await _admin(request)
    helpdesk = _helpdesk(request)
    ticket = await helpdesk.tickets.find(request.path_params["reference"])
    if ticket is None:
        raise HTTPException(404, "チケットが見つかりません。")
    if ticket.status not in (TicketStatus.resolved, TicketStatus.closed):
        raise HTTPException(422, NOT_RESOLVED)
    conversation = await helpdesk.tickets.conversation(ticket, internal=True)
    asked = [m.body for m, _ in conversation if m.author is Author.customer and m.verified]
    answers = [m.body for m, _ in conversation if m.author is Author.agent]
    if not answers:
        raise HTTPException(422, NO_ANSWER)
    kb = await _kb(request)
    live = kb.live_categories()
    category = next((c.key for c in live if c.name == "その他"), live[0].key if live else "")
    question = _masked(asked[0] if asked else ticket.subject).strip()
    form = EntryForm(
        id=suggest_id(kb, None, prefix="ticket"),
        question=_first_sentence(question),
        alternatives="",
        category=category,
        answer=_masked(answers[-1]).strip(),
        status=DRAFT,
    )
    saved = await helpdesk.faq.store.save_entry(
        form, agent=agent, kb=kb, new=True, base=None, source=f"ticket:{ticket.reference}"
    )
    if not saved.ok:
        context = _form_context(kb, form, new=True, base=None, source=f"ticket:{ticket.reference}")
        return _refused(request, agent, kb, saved, context)
    _saved(request)
    return RedirectResponse(
        f"{helpdesk.console_urls.faq_entry(form.id)}?done=draft", status_code=303
    )


def _masked(text: str) -> str:
    """``text`` with addresses, phone and order numbers masked, line by line; lines without
    any keep the shop's own characters (masking normalizes width: ？ would become ?)."""
    lines = []
    for line in text.splitlines():
        masked = mask_personal_data(line)
        lines.append(masked if masked != unicodedata.normalize("NFKC", line) else line)
    return "\n".join(lines)


def _first_sentence(text: str, limit: int = 200) -> str:
    """A question's first line, up to its first 「？」 or 「。」 (at most ``limit`` chars)."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), text)
    match = re.search(r"[？?。]", line)
    return (line[: match.end()] if match else line)[:limit]


routes = [
    Route(FAQ, faq_list, methods=["GET"]),
    Route(f"{FAQ}/new", entry_new, methods=["GET"]),
    Route(f"{FAQ}/new", entry_create, methods=["POST"]),
    Route(f"{FAQ}/e/{{entry_id}}", entry_page, methods=["GET"]),
    Route(f"{FAQ}/e/{{entry_id}}", entry_save, methods=["POST"]),
    Route(f"{FAQ}/e/{{entry_id}}/status", entry_status, methods=["POST"]),
    Route(f"{FAQ}/categories", categories_page, methods=["GET"]),
    Route(f"{FAQ}/categories", category_save, methods=["POST"]),
    Route(f"{FAQ}/preview", preview, methods=["GET"]),
    Route(f"{FAQ}/gaps", gaps_page, methods=["GET"]),
    Route(f"{FAQ}/gaps/phrasing", gap_phrasing, methods=["POST"]),
    Route(f"{FAQ}/gaps/synonym", gap_synonym, methods=["POST"]),
    Route("/console/t/{reference}/faq-draft", draft_from_ticket, methods=["POST"]),
]
