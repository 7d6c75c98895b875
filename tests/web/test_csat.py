"""Satisfaction surveys: the resolution mail's two links, the page, signatures, results."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from helpdesk.models import (
    Agent,
    CsatRating,
    CsatResponse,
    Outbox,
    Ticket,
    TicketEvent,
    TicketKind,
    TicketStatus,
)
from helpdesk.tickets import (
    Actor,
    AddNote,
    Assign,
    Command,
    Reply,
    SetStatus,
    Submission,
    store,
)
from helpdesk.tickets.csat import MAX_COMMENT, REOPENED, SUPERSEDED, SurveyError
from tests.helpers import add_agent, rows, soup, submit_inquiry, the_ticket

SURVEY_LINK = re.compile(r"http://testserver(/t/[^\s]+/csat/\d+\?\S+)")
RESOLVED = SetStatus(TicketStatus.resolved)


async def _apply(app: Starlette, ticket: Ticket, agent: Agent, *commands: Command) -> None:
    result = await app.state.helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel="web"), commands
    )
    assert result.ok, result.problems


async def _links(app: Starlette, ticket: Ticket) -> dict[str, str]:
    """The survey links (paths) of the ticket's latest mail, by rating."""
    mails = await rows(
        app, Outbox, Outbox.ticket_id == ticket.id, Outbox.to_address == "hanako@example.jp"
    )
    latest = mails[-1]
    return {parse_qs(urlsplit(p).query)["v"][0]: p for p in SURVEY_LINK.findall(latest.text)}


async def _resolved(app: Starlette, *commands: Command) -> tuple[Ticket, Agent, dict[str, str]]:
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    await _apply(app, ticket, agent, RESOLVED, *commands)
    return ticket, agent, await _links(app, ticket)


async def _answer(
    client: httpx.AsyncClient, link: str, rating: str | None, comment: str = ""
) -> httpx.Response:
    """Open the link as a person does, then press 送信する."""
    page = soup(await client.get(link))
    form = page.select_one("form.csat")
    assert form is not None
    data = {"csrf_token": form.select_one("input[name=csrf_token]")["value"], "comment": comment}
    if rating:
        data["rating"] = rating
    return await client.post(form["action"], data=data)


async def _surveys(app: Starlette) -> list[CsatResponse]:
    return await rows(app, CsatResponse)


# -- the mail ------------------------------------------------------------------------------------


async def test_only_the_resolution_mail_carries_the_survey(app: Starlette) -> None:
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    await _apply(app, ticket, agent, Reply("確認いたします。"))
    await _apply(app, ticket, agent, SetStatus(TicketStatus.pending))
    await _apply(app, ticket, agent, RESOLVED)
    other = await submit_inquiry(app)
    await _apply(app, other, agent, RESOLVED, Reply("本日発送いたしました。"))

    mails = await rows(app, Outbox, Outbox.to_address == "hanako@example.jp")
    carrying = [(m.ticket_id, m.kind) for m in mails if "アンケートのお願い" in m.text]
    assert carrying == [(ticket.id, "status_changed"), (other.id, "agent_reply")]
    for mail in mails:
        links = SURVEY_LINK.findall(mail.text)
        assert len(links) == (2 if "アンケートのお願い" in mail.text else 0), mail.kind
    resolution = next(m for m in mails if m.kind == "status_changed" and "アンケート" in m.text)
    text = resolution.text
    assert text.index("良かった:\n") < text.index("v=good") < text.index("改善してほしい:\n")
    assert text.index("改善してほしい:\n") < text.index("v=improve")
    assert "回答期限: " in text and "(ご回答は任意です)" in text
    # The HTML part links both.
    hrefs = [a["href"] for a in soup(resolution.html).select("a[href*='/csat/']")]
    assert [parse_qs(urlsplit(h).query)["v"] for h in hrefs] == [["good"], ["improve"]]
    # One survey per resolution, credited to the agent who resolved it (nobody assigned).
    surveys = await _surveys(app)
    assert [(s.ticket_id, s.resolution, s.agent_id, s.rating, s.mailed) for s in surveys] == [
        (ticket.id, 1, agent.id, None, True),
        (other.id, 1, agent.id, None, True),
    ]


async def test_a_resolution_kept_internal_sends_no_survey(app: Starlette) -> None:
    agent = await add_agent(app)
    ticket = await submit_inquiry(app)
    await _apply(app, ticket, agent, AddNote("迷惑メールのため対応不要"), RESOLVED)
    assert not [m for m in await rows(app, Outbox) if "アンケート" in m.text]
    [survey] = await _surveys(app)
    assert survey.mailed is False and survey.resolution == 1


# -- the page: opening records nothing, the button does ------------------------------------------


async def test_opening_the_links_records_nothing(client: httpx.AsyncClient, app: Starlette) -> None:
    """Mail scanners and link previews open every link of a mail, with GET or HEAD."""
    _, _, links = await _resolved(app)
    for link in links.values():
        assert (await client.head(link)).status_code == 200
        response = await client.get(link)
        assert response.status_code == 200
    [survey] = await _surveys(app)
    assert survey.rating is None and survey.answered_at is None

    page = soup(await client.get(links["improve"]))
    assert page.html["lang"] == "ja"
    assert page.select_one("meta[name=robots]")["content"] == "noindex"
    checked = page.select("input[name=rating][checked]")
    assert [c["value"] for c in checked] == ["improve"]
    labels = [label.get_text(strip=True) for label in page.select("label.csat-choice")]
    assert labels == ["良かった", "改善してほしい"]
    assert "「送信する」を押すまで、回答は送られません。" in page.get_text()
    assert page.select_one("textarea#comment")["maxlength"] == str(MAX_COMMENT)


async def test_the_button_records_and_a_later_choice_replaces_it(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    ticket, _, links = await _resolved(app)
    comment = "丁寧でした。連絡先は hanako@example.jp / 090-1234-5678 です。"
    sent = await _answer(client, links["good"], "good", comment)
    assert sent.status_code == 303
    thanks = soup(await client.get(sent.headers["location"]))
    assert "ご回答ありがとうございました" in thanks.select_one(".thanks").get_text()
    [survey] = await _surveys(app)
    assert survey.rating is CsatRating.good
    assert survey.comment == "丁寧でした。連絡先は [メール] / [電話番号] です。"
    first_answer = survey.answered_at
    assert first_answer is not None

    # The customer changes their mind; no new comment keeps the first.
    assert (await _answer(client, links["improve"], "improve")).status_code == 303
    [survey] = await _surveys(app)
    assert survey.rating is CsatRating.improve and survey.comment.startswith("丁寧でした")  # type: ignore[union-attr]
    assert survey.answered_at == first_answer
    events = await rows(app, TicketEvent, TicketEvent.kind == "csat_answered")
    assert [(e.ticket_id, e.actor) for e in events] == [(ticket.id, "customer")] * 2


async def test_without_the_csrf_token_nothing_is_recorded(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    _, _, links = await _resolved(app)
    await client.get(links["good"])  # the cookie is set
    typed = "説明がわかりやすかったです。"
    refused = await client.post(links["good"], data={"rating": "good", "comment": typed})
    assert refused.status_code == 403
    page = soup(refused)
    assert "ページの有効期限が切れたため" in page.select_one(".error-summary").get_text()
    assert page.select_one("textarea#comment").get_text() == typed
    assert [c["value"] for c in page.select("input[name=rating][checked]")] == ["good"]
    # A token from another browser (no cookie) is no better.
    token = page.select_one("input[name=csrf_token]")["value"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as stranger:
        cross = await stranger.post(links["good"], data={"rating": "good", "csrf_token": token})
    assert cross.status_code == 403
    [survey] = await _surveys(app)
    assert survey.rating is None


async def test_a_choice_is_needed_and_comments_have_a_limit(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    _, _, links = await _resolved(app)
    none = await _answer(client, links["good"], None, "コメントだけ")
    assert none.status_code == 422
    assert "どちらかを選んでください" in soup(none).select_one("#rating-error").get_text()

    long = "あ" * (MAX_COMMENT + 1)
    refused = await _answer(client, links["good"], "good", long)
    assert refused.status_code == 422
    page = soup(refused)
    assert page.select_one("#comment-error").get_text() == (
        f"ご意見は{MAX_COMMENT}文字以内で入力してください(いまは{MAX_COMMENT + 1}文字です)。"
    )
    assert page.select_one("textarea#comment").get_text() == long  # nothing typed is lost
    assert (await _surveys(app))[0].rating is None

    assert (await _answer(client, links["good"], "good", "あ" * MAX_COMMENT)).status_code == 303
    assert (await _surveys(app))[0].comment == "あ" * MAX_COMMENT


# -- signatures ----------------------------------------------------------------------------------


def _with(link: str, **changes: str) -> str:
    parts = urlsplit(link)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    path = parts.path
    if "resolution" in query:
        path = path.rsplit("/", 1)[0] + "/" + query.pop("resolution")
    return f"{path}?" + "&".join(f"{k}={v}" for k, v in query.items())


async def test_links_we_did_not_sign_open_nothing(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    ticket, agent, links = await _resolved(app)
    other = await submit_inquiry(app)
    await _apply(app, other, agent, RESOLVED)
    theirs = (await _links(app, other))["good"]
    link = links["good"]
    signature = parse_qs(urlsplit(link).query)["s"][0]
    tampered = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    later = (date.today() + timedelta(days=300)).strftime("%Y%m%d")
    forged = [
        _with(link, s=tampered),
        _with(link, s=""),
        _with(link, e=later),  # a longer life needs a new signature
        _with(link, e="2027-01-01"),
        _with(link, resolution="2"),
        # Another ticket's signature on this ticket, and this one's on the other.
        _with(link, s=parse_qs(urlsplit(theirs).query)["s"][0]),
        link.replace(ticket.reference, other.reference),
    ]
    for path in forged:
        assert (await client.get(path)).status_code == 404, path
        answer = await client.post(path, data={"rating": "good"})
        assert answer.status_code == 404, path
    assert all(s.rating is None for s in await _surveys(app))
    assert (await client.get(link)).status_code == 200


async def test_an_expired_link_answers_nothing(client: httpx.AsyncClient, app: Starlette) -> None:
    ticket, _, links = await _resolved(app)
    tickets = app.state.helpdesk.tickets
    [survey] = await _surveys(app)
    # A link we signed once, whose last day has passed.
    last_day = date(2026, 1, 31)
    expired = tickets.urls.csat(ticket, 1, last_day, "good")
    response = await client.get(expired)
    assert response.status_code == 410
    assert "回答期限(1月31日(土)まで)を過ぎました" in soup(response).get_text()
    # The mail's own link, 31 days after the resolution.
    reference, resolution, query = ticket.reference, 1, parse_qs(urlsplit(links["good"]).query)
    day = tickets.csat.last_day(survey)
    assert day == tickets.policy.local(survey.created_at.replace(tzinfo=UTC)).date() + timedelta(
        days=30
    )
    month_later = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    with pytest.raises(SurveyError) as raised:
        await tickets.csat.open(reference, resolution, day, query["s"][0], now=month_later)
    assert raised.value.status_code == 410
    opened = await tickets.csat.open(reference, resolution, day, query["s"][0])
    assert opened.response.id == survey.id


async def test_a_reopened_ticket_closes_its_survey_and_the_next_resolution_gets_a_fresh_one(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    ticket, agent, first = await _resolved(app)
    tickets = app.state.helpdesk.tickets
    await tickets.add_customer_message(ticket, "まだ届いていません。", {})
    assert (await the_ticket(app, ticket.reference)).status == TicketStatus.open

    reopened = await client.get(first["good"])
    assert reopened.status_code == 410 and REOPENED in soup(reopened).get_text()

    await _apply(app, ticket, agent, RESOLVED, Reply("再送いたしました。"))
    second = await _links(app, ticket)
    assert second["good"] != first["good"] and "/csat/2?" in second["good"]
    superseded = await client.get(first["good"])
    assert superseded.status_code == 410 and SUPERSEDED in soup(superseded).get_text()
    assert (await _answer(client, second["good"], "good")).status_code == 303
    surveys = await _surveys(app)
    assert [(s.resolution, s.rating) for s in surveys] == [(1, None), (2, CsatRating.good)]
    # Closing the resolved ticket keeps its survey open.
    await _apply(app, ticket, agent, SetStatus(TicketStatus.closed))
    assert (await _answer(client, second["improve"], "improve")).status_code == 303


# -- results for insights ------------------------------------------------------------------------


async def test_results_per_agent_and_per_kind(app: Starlette) -> None:
    tickets = app.state.helpdesk.tickets
    sato = await add_agent(app, "sato@interiorltd.jp", "佐藤")
    suzuki = await add_agent(app, "suzuki@interiorltd.jp", "鈴木")

    async def resolved(kind: TicketKind, resolver: Agent, *commands: Command) -> Ticket:
        fields: dict[str, object] = {}
        if kind is TicketKind.exchange:
            fields = {"order_number": "#1234", "desired_variant": "iPhone 15 / 黒"}
        submission = Submission(
            kind=kind, name="山田 花子", email="hanako@example.jp", description="x", **fields
        )
        ticket, _ = await tickets.submit(submission, {}, late=False)
        await _apply(app, ticket, resolver, RESOLVED, *commands)
        return ticket  # type: ignore[no-any-return]

    async def vote(ticket: Ticket, rating: CsatRating) -> None:
        [survey] = await rows(app, CsatResponse, CsatResponse.ticket_id == ticket.id)
        day = tickets.csat.last_day(survey)
        signature = tickets.access.csat_signature(ticket, 1, day)
        await tickets.csat.answer(ticket.reference, 1, day, signature, rating=rating, comment="")

    a = await resolved(TicketKind.inquiry, sato)
    b = await resolved(TicketKind.inquiry, sato)
    c = await resolved(TicketKind.exchange, sato, Assign("鈴木"))  # the assignee is credited
    d = await resolved(TicketKind.exchange, suzuki)
    await resolved(TicketKind.inquiry, suzuki)  # not answered
    old = await resolved(TicketKind.inquiry, sato)  # resolved before the range
    await vote(a, CsatRating.good)
    await vote(b, CsatRating.improve)
    await vote(c, CsatRating.good)
    await vote(d, CsatRating.good)
    await vote(old, CsatRating.improve)
    async with app.state.helpdesk.sessions() as session, session.begin():
        await session.execute(
            update(CsatResponse)
            .where(CsatResponse.ticket_id == old.id)
            .values(created_at=datetime.now(UTC) - timedelta(days=40))
        )
    # A system resolution (no agent, nobody assigned) counts under no agent.
    system = await submit_inquiry(app)
    await tickets.apply(system, Actor.system(), [RESOLVED])

    start, end = datetime.now(UTC) - timedelta(days=7), datetime.now(UTC) + timedelta(hours=1)
    async with app.state.helpdesk.sessions() as session:
        agents = await store.csat_by_agent(session, start=start, end=end)
        kinds = await store.csat_by_kind(session, start=start, end=end)
        everything = await store.csat_by_kind(session, start=start - timedelta(days=60), end=end)
    by_agent = {t.key: (t.sent, t.good, t.improve) for t in agents}
    assert by_agent == {sato.id: (2, 1, 1), suzuki.id: (3, 2, 0), None: (1, 0, 0)}
    by_kind = {t.key: (t.sent, t.answered, t.score) for t in kinds}
    assert by_kind == {TicketKind.inquiry: (4, 2, 0.5), TicketKind.exchange: (2, 2, 1.0)}
    assert {t.key: t.sent for t in everything}[TicketKind.inquiry] == 5
    assert [t.key for t in agents][-1] is None  # "no agent" last
