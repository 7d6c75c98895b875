"""``helpdesk.tickets.access`` and ``urls``: what is signed, and every ticket URL."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from helpdesk.photos import StoredPhoto
from helpdesk.tickets import Signer, TicketAccess, TicketUrls

SUPPORT = "admin@interiorltd.jp"


def ticket(reference: str = "HD-26-00042", nonce: str = "n0nce") -> Any:
    return SimpleNamespace(reference=reference, token_nonce=nonce)


@pytest.fixture
def access() -> TicketAccess:
    return TicketAccess(Signer("test-secret-key"), support_address=SUPPORT)


def test_a_signature_depends_on_the_purpose_the_value_and_the_key() -> None:
    signer = Signer("k")
    assert signer.sign("ticket", "a") == signer.sign("ticket", "a")
    assert (
        len({signer.sign("ticket", "a"), signer.sign("agent", "a"), signer.sign("ticket", "b")})
        == 3
    )
    assert len({signer.sign("ticket", "a"), Signer("other").sign("ticket", "a")}) == 2
    assert signer.sign("ticket", "a").isascii() and "=" not in signer.sign("ticket", "a")


@pytest.mark.parametrize("given", [None, "", "x", "é", "ｔｏｋｅｎ", "A" * 1000])
def test_odd_signatures_are_refused_without_an_error(given: str | None) -> None:
    assert Signer.same(Signer("k").sign("p", "v"), given) is False


def test_the_customers_token_opens_only_its_own_ticket(access: TicketAccess) -> None:
    mine, other = ticket(), ticket("HD-26-00043")
    token = access.access_token(mine)
    assert access.check_token(mine, token)
    assert not access.check_token(other, token)
    assert not access.check_token(ticket(nonce="another"), token)  # a new nonce revokes it
    assert not access.check_token(mine, token[:-1])
    # The agents' old key (kept only to be redacted) never opens the customer's view.
    key = access.agent_key(mine)
    assert key != token
    assert not access.check_token(mine, key)


def test_a_photo_token_carries_the_photo_and_refuses_tampering(access: TicketAccess) -> None:
    photo = StoredPhoto(
        digest="a" * 64,
        thumb_digest="b" * 64,
        content_type="image/jpeg",
        size=1234,
        width=640,
        height=480,
        original_filename="IMG_0001.jpg",
    )
    token = access.photo_token(photo)
    assert access.photo_from_token(token) == photo
    payload, signature = token.rsplit(".", 1)
    assert access.photo_from_token(f"{payload}x.{signature}") is None
    assert access.photo_from_token(f"{payload}.") is None
    for odd in (None, "", "no-dot", "abc.é"):
        assert access.photo_from_token(odd) is None


def test_reply_addresses_name_the_ticket_and_who_may_command(access: TicketAccess) -> None:
    customers = access.reply_address(ticket())
    agents = access.reply_address(ticket(), agents=True)
    assert customers.startswith("admin+hd-26-00042.") and customers.endswith("@interiorltd.jp")
    assert agents != customers and agents.startswith("admin+hd-26-00042.a")
    assert access.ticket_from_reply_address(customers) == ("HD-26-00042", False)
    assert access.ticket_from_reply_address(agents) == ("HD-26-00042", True)
    assert access.ticket_from_reply_address(f"  {agents.upper()} ") == ("HD-26-00042", True)


@pytest.mark.parametrize(
    "forged",
    [
        "admin+hd-26-00042.aaaaaaaaaaaa@interiorltd.jp",  # a made-up signature
        "admin+hd-26-00043.{sig}@interiorltd.jp",  # another ticket's reference
        "other+hd-26-00042.{sig}@interiorltd.jp",  # another mailbox
        "admin+hd-26-00042.{sig}@example.jp",  # another domain
        "admin+hd-26-00042.a{sig}@interiorltd.jp",  # the customer's signature made agents'
        "admin@interiorltd.jp",
        "",
    ],
)
def test_forged_reply_addresses_name_nothing(access: TicketAccess, forged: str) -> None:
    signature = access.reply_address(ticket()).split(".", 1)[1].split("@")[0]
    assert access.ticket_from_reply_address(forged.format(sig=signature)) is None


def test_ticket_urls_are_built_in_one_place(access: TicketAccess) -> None:
    urls = TicketUrls("https://help.example.jp/", access)
    mine = ticket()
    token, key = access.access_token(mine), access.agent_key(mine)
    assert urls.status(mine) == f"/t/HD-26-00042?token={token}"
    assert urls.status(mine, sent=True) == f"/t/HD-26-00042?token={token}&sent=1#reply"
    assert urls.submitted(mine) == f"/t/HD-26-00042/submitted?token={token}"
    assert urls.messages(mine) == f"/t/HD-26-00042/messages?token={token}"
    assert urls.photo(mine, "d" * 8) == f"/t/HD-26-00042/photos/dddddddd?token={token}"
    # The agents' links lead to the console (login required) and carry no key (issue 7, #19).
    assert urls.agent(mine) == "/console/t/HD-26-00042"
    assert urls.agent_photo(mine, "d") == "/console/t/HD-26-00042/photos/d"
    assert urls.status_url(mine) == f"https://help.example.jp/t/HD-26-00042?token={token}"
    assert urls.agent_url(mine) == "https://help.example.jp/console/t/HD-26-00042"
    assert key not in urls.agent_url(mine)
