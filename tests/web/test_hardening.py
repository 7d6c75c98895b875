"""Issue 7 ("what a hostile internet found"): each finding, replayed against the app.

Every test here failed before its fix; the finding's number is in the test's docstring.
The live-server finding (#5, X-Forwarded-For) is in ``tests/test_serve.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

import httpx
import pytest
from starlette.applications import Starlette

from helpdesk.models import Customer, Message, Outbox, Ticket, TicketEvent
from helpdesk.tickets import Actor, Channel, Reply
from tests.helpers import (
    SUPPORT,
    add_agent,
    api_inquiry,
    count,
    defect_fields,
    deliver,
    form_state,
    free_port,
    logged_in_client,
    mail,
    photos,
    rows,
    soup,
    the_ticket,
)

INQUIRY = {
    "kind": "inquiry",
    "category": "not_arrived",
    "name": "山田 花子",
    "email": "hanako@example.jp",
    "description": "注文した商品がまだ届きません。",
}
CONTACT = {k: v for k, v in INQUIRY.items() if k != "kind"}
PHISHING_NAME = "【重要】お支払い情報の再登録が必要です http://evil.example/login"


@asynccontextmanager
async def client_at(app: Starlette, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from ``address`` (the TCP peer the app sees)."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def secrets_in(response: httpx.Response) -> list[str]:
    """Anything in an answer that would open a ticket: links, tokens, references."""
    text = response.text
    return [word for word in ("token=", "/t/HD-", "status_url", "HD-") if word in text]


@pytest.fixture
async def smtp_port(app: Starlette) -> AsyncIterator[int]:
    """The app's own SMTP receiver, listening on loopback."""
    port = free_port()
    app.state.helpdesk.settings.inbound_smtp_port = port
    await app.state.helpdesk.start_receiver()
    yield port


# -- #4: a repeated key must come with the same content ----------------------------------------


async def test_an_idempotency_key_with_other_content_gets_409_and_no_secrets(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """#4: the second caller got 200 and the first caller's status_url with its token."""
    key = {"Idempotency-Key": "order-1234"}
    first = await client.post("/api/tickets", json=INQUIRY, headers=key)
    assert first.status_code == 201
    other = {**INQUIRY, "description": "住所を変更したいです。"}
    replay = await client.post("/api/tickets", json=other, headers=key)
    assert replay.status_code == 409
    assert set(replay.json()) == {"errors"}
    assert "送信キー" in replay.json()["errors"]["form"]
    assert secrets_in(replay) == []
    # The same content again is the caller's own retry: the first ticket, 200.
    again = await client.post("/api/tickets", json=INQUIRY, headers=key)
    assert again.status_code == 200 and again.json() == {**first.json()}
    assert await count(app, Ticket) == 1


async def test_photos_are_part_of_the_content_a_key_stands_for(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """#4: the fingerprint covers each photo's content, not only the text fields."""
    key = {"Idempotency-Key": "return-77"}
    data = defect_fields(app)
    first = await client.post("/api/tickets", data=data, files=photos(), headers=key)
    assert first.status_code == 201
    same = await client.post("/api/tickets", data=data, files=photos(), headers=key)
    assert same.status_code == 200 and same.json()["reference"] == first.json()["reference"]
    from tests import imaging

    other_photo = photos(defect=imaging.jpeg(color="blue"))
    replaced = await client.post("/api/tickets", data=data, files=other_photo, headers=key)
    assert replaced.status_code == 409 and secrets_in(replaced) == []
    assert await count(app, Ticket) == 1


async def test_a_form_sent_again_with_other_content_is_not_swallowed(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """#4: the form's submission id follows the same rule: 409, values kept, a new id."""
    state = await form_state(client, "/contact")
    first = await client.post("/contact", data={**state, **CONTACT})
    assert first.status_code == 303
    edited = {**CONTACT, "description": "やはり注文を取り消したいです。"}
    conflict = await client.post("/contact", data={**state, **edited})
    assert conflict.status_code == 409
    page = soup(conflict)
    assert "送信キー" in page.get_text()
    assert page.select_one("#description").get_text() == edited["description"]
    fresh_id = page.select_one("input[name=submission_id]")["value"]
    assert fresh_id and fresh_id != state["submission_id"]
    assert "HD-" not in page.get_text() and "token=" not in conflict.text
    resent = await client.post("/contact", data={**state, **edited, "submission_id": fresh_id})
    assert resent.status_code == 303
    assert resent.headers["location"] != first.headers["location"]
    assert await count(app, Ticket) == 2


# -- #7: the name given with a ticket is the ticket's name ---------------------------------------


async def test_the_name_in_a_tickets_mails_is_the_one_given_with_it(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """#7: the first ticket for an address fixed the name every later mail greeted with."""
    squatted = await api_inquiry(client, name="偽名 太郎")
    created = await api_inquiry(client, name="山田 花子", description="届いていません。")
    ticket = await the_ticket(app, created["reference"])
    agent = await add_agent(app)
    result = await app.state.helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), [Reply("明日発送いたします。")]
    )
    assert result.ok
    for kind in ("ticket_confirmation", "agent_reply"):
        [sent] = await rows(app, Outbox, Outbox.kind == kind, Outbox.ticket_id == ticket.id)
        assert sent.text.startswith("山田 花子 様"), sent.text
        assert "偽名" not in sent.text and "偽名" not in (sent.html or "")
    assert ticket.customer_name == "山田 花子"
    assert (await the_ticket(app, squatted["reference"])).customer_name == "偽名 太郎"
    [notice] = await rows(
        app, Outbox, Outbox.kind == "ticket_notification", Outbox.ticket_id == ticket.id
    )
    assert "お名前: 山田 花子" in notice.text
    # The agents' page of the ticket names its own customer too.
    link = httpx.URL(next(w for w in notice.text.split() if "/console/t/" in w))
    async with logged_in_client(app) as console:
        page = soup(await console.get(link.path))
    assert "山田 花子" in page.select_one("dl.status").get_text()
    assert "偽名" not in page.get_text()


@pytest.mark.parametrize(
    "name",
    [
        PHISHING_NAME,
        "www.evil.example",
        "evil.example/login",
        "hanako@example.jp",
        "お支払いevil.com",
    ],
)
async def test_names_holding_links_are_refused_in_japanese(
    client: httpx.AsyncClient, app: Starlette, name: str
) -> None:
    """#7: a name is shown in the shop's mails, where clients turn URLs into links."""
    response = await client.post("/api/tickets", json={**INQUIRY, "name": name})
    assert response.status_code == 422
    assert "URL" in response.json()["errors"]["name"]
    state = await form_state(client, "/contact")
    form = await client.post("/contact", data={**state, **CONTACT, "name": name})
    assert form.status_code == 422
    assert soup(form).select_one("#name")["value"] == name  # kept for correcting
    assert await count(app, Ticket) == 0


async def test_a_display_name_from_mail_never_becomes_a_link(
    app: Starlette, smtp_port: int
) -> None:
    """#7: names from mail lose their link-looking parts before any mail shows them."""
    message = mail(f'"{PHISHING_NAME}" <hanako@example.jp>', SUPPORT, "届きません", "まだです")
    await deliver(smtp_port, message)
    [ticket] = await rows(app, Ticket)
    agent = await add_agent(app)
    await app.state.helpdesk.tickets.apply(
        ticket, Actor.agent(agent, channel=Channel.web), [Reply("ご確認ください")]
    )
    sent = await rows(app, Outbox)
    assert {m.kind for m in sent} == {"ticket_confirmation", "ticket_notification", "agent_reply"}
    for mail_row in sent:
        assert "evil.example" not in mail_row.text + (mail_row.html or "")
    assert ticket.customer_name == "【重要】お支払い情報の再登録が必要です"


# -- #8: others cannot use up a customer's confirmations -----------------------------------------


async def test_a_stranger_cannot_use_up_a_customers_confirmation(app: Starlette) -> None:
    """#8: ten API tickets for the victim's address silenced the victim's confirmation."""
    app.state.helpdesk.tickets.notify.automatic_mail_limit = 3
    async with client_at(app, "203.0.113.66") as attacker:
        answers = [
            await attacker.post("/api/tickets", json={**INQUIRY, "name": f"攻撃{i}"})
            for i in range(5)
        ]
    assert [a.status_code for a in answers] == [201] * 5
    async with client_at(app, "198.51.100.7") as victim:
        state = await form_state(victim, "/contact")
        sent = await victim.post("/contact", data={**state, **CONTACT})
        assert sent.status_code == 303
        page = soup(await victim.get(sent.headers["location"]))
    confirmations = await rows(app, Outbox, Outbox.kind == "ticket_confirmation")
    victims = [c for c in confirmations if c.text.startswith("山田 花子 様")]
    assert len(victims) == 1, "the victim's own confirmation was not queued"
    assert "確認メールをお送りしました" in page.get_text()
    # The attacker's own allowance ran out, and the API said so.
    assert [a.json()["confirmation_mail"] for a in answers] == [True, True, True, False, False]
    assert len(confirmations) == 4
    assert victims[0].origin == "client:198.51.100.7"
    created = await rows(app, TicketEvent, TicketEvent.kind == "created")
    assert json.loads(created[-1].data)["client"] == "198.51.100.7"  # audited by client


async def test_the_page_never_claims_a_mail_that_was_not_queued(app: Starlette) -> None:
    """#8: the submitted page said 「確認メールをお送りしました」 whatever happened."""
    app.state.helpdesk.tickets.notify.automatic_mail_limit = 1
    async with client_at(app, "198.51.100.7") as customer:
        for description in ("1件目です。", "2件目です。"):
            state = await form_state(customer, "/contact")
            data = {**state, **CONTACT, "description": description}
            sent = await customer.post("/contact", data=data)
            assert sent.status_code == 303
        page = soup(await customer.get(sent.headers["location"]))
    text = page.get_text()
    assert "確認メールをお送りしました" not in text
    assert "確認メールはお送りしていません" in text
    status_link = page.select_one("main a[href^='/t/']")
    assert status_link is not None and "token=" in status_link["href"]
    assert len(await rows(app, Outbox, Outbox.kind == "ticket_confirmation")) == 1


async def test_a_flood_from_many_clients_is_still_capped_per_address(app: Starlette) -> None:
    """#8: counting per client must not turn the cap into a mail cannon."""
    notify = app.state.helpdesk.tickets.notify
    notify.automatic_mail_limit, notify.automatic_mail_address_limit = 2, 5
    for n in range(8):
        async with client_at(app, f"203.0.113.{n + 1}") as sender:
            await sender.post("/api/tickets", json={**INQUIRY, "description": f"{n}件目"})
    assert len(await rows(app, Outbox, Outbox.kind == "ticket_confirmation")) == 5


# -- #13: no ticket from a cross-site page --------------------------------------------------------

EVIL = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "kind=inquiry&category=other&name=x&email=a%40b.jp"),
        ("text/plain", '{"kind": "inquiry"}'),
        ("application/xml", "<ticket/>"),
        ("", "kind=inquiry"),
    ],
)
async def test_the_api_refuses_what_a_cross_site_form_can_send(
    client: httpx.AsyncClient, app: Starlette, content_type: str, body: str
) -> None:
    """#13: a cross-site urlencoded post opened tickets (201 with Origin: evil.example)."""
    response = await client.post(
        "/api/tickets", content=body, headers={"Content-Type": content_type, **EVIL}
    )
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["errors"]["form"]
    assert await count(app, Ticket) == 0 and await count(app, Outbox) == 0


@pytest.mark.parametrize(
    "headers",
    [
        EVIL,
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
    ],
)
async def test_browsers_need_the_forms_token_even_with_multipart(
    client: httpx.AsyncClient, app: Starlette, headers: dict[str, str]
) -> None:
    """#13: multipart needs no preflight either: a browser must prove it is on our page."""
    data = {k: v for k, v in INQUIRY.items()}
    response = await client.post(
        "/api/tickets", data=data, files={"none": ("", b"")}, headers=headers
    )
    assert response.status_code == 403
    assert "トークン" in response.json()["errors"]["form"]
    assert await count(app, Ticket) == 0 and await count(app, Outbox) == 0


async def test_our_own_pages_may_use_the_api_with_the_token(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """#13: a same-site browser with the form's token (cookie and header) is served."""
    token = (await form_state(client, "/contact"))["csrf_token"]
    headers = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    forged = await client.post("/api/tickets", json=INQUIRY, headers=headers)
    assert forged.status_code == 403
    response = await client.post(
        "/api/tickets", json=INQUIRY, headers={**headers, "X-CSRF-Token": token}
    )
    assert response.status_code == 201


async def test_api_keys_when_configured(client: httpx.AsyncClient, app: Starlette) -> None:
    """#13: integrations identify themselves with a key; keyless callers are refused."""
    app.state.helpdesk.settings.api_keys = "key-for-the-shop, key-for-the-crm"
    keyless = await client.post("/api/tickets", json=INQUIRY)
    assert keyless.status_code == 401 and keyless.headers["www-authenticate"] == "Bearer"
    assert "APIキー" in keyless.json()["errors"]["form"]
    wrong = await client.post(
        "/api/tickets", json=INQUIRY, headers={"Authorization": "Bearer key-for-the"}
    )
    assert wrong.status_code == 401
    by_bearer = await client.post(
        "/api/tickets", json=INQUIRY, headers={"Authorization": "Bearer key-for-the-crm"}
    )
    by_header = await client.post(
        "/api/tickets",
        json={**INQUIRY, "description": "別件です。"},
        headers={"X-API-Key": "key-for-the-shop", **EVIL},  # a key is not a browser's
    )
    assert by_bearer.status_code == by_header.status_code == 201
    assert await count(app, Ticket) == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"[1, 2]", 400, "form"),
        (b"{not json", 400, "form"),
        (b"\xff\xfe", 400, "form"),
        (json.dumps({**INQUIRY, "name": 42}).encode(), 422, "name"),
        (json.dumps({**INQUIRY, "description": "あ" * 40_000}).encode(), 413, "form"),
    ],
)
async def test_json_bodies_are_checked_with_japanese_messages(
    client: httpx.AsyncClient, app: Starlette, body: bytes, status: int, field: str
) -> None:
    response = await client.post(
        "/api/tickets", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.json()["errors"][field]
    assert await count(app, Ticket) == 0


async def test_photos_come_only_as_multipart(client: httpx.AsyncClient, app: Starlette) -> None:
    kept = await client.post(
        "/api/tickets",
        json={**defect_fields(app), "photo_overall_kept": "x.y", "photo_overall": "data:"},
    )
    assert kept.status_code == 422
    assert set(kept.json()["errors"]) == {"photo_overall", "photo_defect"}


# -- #15: message ids are per ticket ------------------------------------------------------------


async def status_form(client: httpx.AsyncClient, status_url: str) -> tuple[str, dict[str, str]]:
    url = httpx.URL(status_url)
    page = soup(await client.get(url.path, params=dict(url.params)))
    csrf = page.select_one("input[name=csrf_token]")["value"]
    return f"{url.path}/messages?{url.query.decode()}", {"csrf_token": csrf}


async def test_a_submission_id_used_on_another_ticket_does_not_drop_a_message(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """#15: a colliding id silently dropped another customer's message."""
    first = await api_inquiry(client)
    second = await api_inquiry(client, email="taro@example.jp", name="山田 太郎")
    for created, body in ((first, "花子です。"), (second, "太郎です。")):
        post, state = await status_form(client, created["status_url"])
        data = {**state, "submission_id": "same-id", "body": body}
        assert (await client.post(post, data=data)).status_code == 303
    bodies = {m.body for m in await rows(app, Message)}
    assert {"花子です。", "太郎です。"} <= bodies
    events = await rows(app, TicketEvent, TicketEvent.kind == "customer_message")
    assert [json.loads(e.data) for e in events] == [{"client": "127.0.0.1"}] * 2


async def test_a_submission_id_sent_again_with_other_text_is_refused_not_dropped(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """#15: on one ticket, the same id with other text is a conflict, and the text is kept."""
    created = await api_inquiry(client)
    post, state = await status_form(client, created["status_url"])
    data = {**state, "submission_id": "id-1", "body": "1通目"}
    assert (await client.post(post, data=data)).status_code == 303
    assert (await client.post(post, data=data)).status_code == 303  # a reload
    conflict = await client.post(post, data={**data, "body": "2通目"})
    assert conflict.status_code == 409
    assert soup(conflict).select_one("textarea[name=body]").get_text() == "2通目"
    assert [m.body for m in await rows(app, Message)].count("1通目") == 1
    assert "2通目" not in {m.body for m in await rows(app, Message)}


# -- #17: nothing invisible in names --------------------------------------------------------------


async def test_spoofing_characters_never_reach_agents(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """#17: 山田\\u202e郎太 displayed as 山田太郎 to agents."""
    created = await api_inquiry(
        client,
        name="\u3164山田\u202e郎太\u200b",
        description="返品\u202eします👨\u200d👩\u200d👧",
    )
    [customer] = await rows(app, Customer)
    [message] = await rows(app, Message)
    assert customer.name == message.author_name == "山田郎太"
    assert (await the_ticket(app, created["reference"])).customer_name == "山田郎太"
    assert message.body == "返品します👨\u200d👩\u200d👧"  # the family emoji stays one
    invisible = await client.post("/api/tickets", json={**INQUIRY, "name": "\u3164\u200b\u202e"})
    assert invisible.json()["errors"]["name"] == "お名前を入力してください。"


# -- #18: one validation of addresses ------------------------------------------------------------


@pytest.mark.parametrize("address", [".a@b.jp", "a..b@c.jp", "a@-b.jp", "a@[127.0.0.1]"])
async def test_the_forms_and_the_api_refuse_odd_addresses(
    client: httpx.AsyncClient, app: Starlette, address: str
) -> None:
    """#18: the form accepted .a@b.jp, a..b@c.jp and a@-b.jp."""
    state = await form_state(client, "/contact")
    form = await client.post("/contact", data={**state, **CONTACT, "email": address})
    assert form.status_code == 422 and "メールアドレスの形式" in form.text
    api = await client.post("/api/tickets", json={**INQUIRY, "email": address})
    assert api.status_code == 422 and "email" in api.json()["errors"]
    assert await count(app, Ticket) == 0


@pytest.mark.parametrize("sender", ["a@[127.0.0.1]", '"a b"@example.jp'])
async def test_mail_from_an_odd_address_gets_no_confirmation(
    app: Starlette, smtp_port: int, sender: str
) -> None:
    """#18: addresses from inbound mail got confirmations without any check."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, SUPPORT, "質問"
    message["Message-ID"] = "<odd-sender@example.jp>"
    message.set_content("商品について質問です。")
    await deliver(smtp_port, message)
    [ticket] = await rows(app, Ticket)  # kept for the agents all the same
    assert ticket.kind == "inquiry"
    assert [o.kind for o in await rows(app, Outbox)] == ["ticket_notification"]
    [suppressed] = await rows(app, TicketEvent, TicketEvent.kind == "mail_suppressed")
    assert json.loads(suppressed.data)["reason"] == "invalid_address"


async def test_agent_add_refuses_odd_addresses(app: Starlette) -> None:
    with pytest.raises(ValueError, match="not an e-mail address"):
        await add_agent(app, email="sato@[127.0.0.1]")
    agent = await add_agent(app, email="Sato@InteriorLtd.JP")
    assert agent.email == "sato@interiorltd.jp"


# -- #20: redirects never name a host the client chose ------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/t/HD-26-00001/?token=x", "/t/HD-26-00001?token=x"),
        ("/faq/", "/faq"),
        ("/contact/", "/contact"),
        ("/static", "/static/"),
    ],
)
async def test_trailing_slash_redirects_are_relative(
    client: httpx.AsyncClient, path: str, location: str
) -> None:
    """#20: Host: evil.example gave Location: http://evil.example/t/REF?token=x."""
    response = await client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == location


@pytest.mark.parametrize("path", ["//evil.example/", "/\\evil.example/", "/nowhere/"])
async def test_no_redirect_to_another_host(client: httpx.AsyncClient, path: str) -> None:
    url = httpx.URL("http://testserver").copy_with(raw_path=path.encode())
    response = await client.get(url, headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers


async def test_every_redirect_after_a_post_is_relative(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """#20, the other redirects: after a form, a message and an FAQ vote."""
    headers = {"Host": "evil.example"}
    state = await form_state(client, "/contact")
    sent = await client.post("/contact", data={**state, **CONTACT}, headers=headers)
    assert sent.status_code == 303 and sent.headers["location"].startswith("/t/HD-")
    created = await api_inquiry(client, email="taro@example.jp")
    post, state = await status_form(client, created["status_url"])
    message = await client.post(post, data={**state, "body": "追記です"}, headers=headers)
    assert message.status_code == 303 and message.headers["location"].startswith("/t/HD-")
    entry = (await client.get("/api/faq/search", params={"q": "いつ発送されますか"})).json()[
        "results"
    ][0]
    vote = await client.post(
        f"/faq/{entry['id']}/feedback",
        data={"helpful": "yes", "csrf_token": state["csrf_token"]},
        headers=headers,
    )
    assert vote.status_code == 303 and vote.headers["location"].startswith("/faq/")
