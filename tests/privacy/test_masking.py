"""Masking of each kind of identifier, in query logs, logs, forms and mail."""

from __future__ import annotations

import logging

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from starlette.applications import Starlette

from helpdesk.models import FaqGap, InboundMail, Message, Ticket, TicketEvent
from helpdesk.privacy.masking import (
    CARD_PLACEHOLDER,
    MaskingFilter,
    _mask_identifiers,
    card_number,
    luhn_valid,
    mask_card_numbers,
    mask_personal_data,
    my_number_valid,
    normalize,
)
from tests.helpers import MailLoop, api_inquiry, rows, submit_inquiry


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("hanako@example.jp まで", "[メール] まで"),
        ("ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｊｐ", "[メール]"),
        ("090-1234-5678", "[電話番号]"),
        ("０９０ー１２３４ー５６７８", "[電話番号]"),  # katakana long vowel mark ー U+30FC
        ("090‐1234‐5678", "[電話番号]"),  # hyphen U+2010
        ("03−1234−5678", "[電話番号]"),  # minus sign U+2212
        ("０３－１２３４－５６７８", "[電話番号]"),  # full-width hyphen-minus
        ("03(1234)5678", "[電話番号]"),
        ("+81 90 1234 5678", "[電話番号]"),
        ("4111 1111 1111 1111", "[カード番号]"),
        ("4111-1111-1111-1111", "[カード番号]"),
        ("４１１１　１１１１　１１１１　１１１１", "[カード番号]"),
        ("3530111333300000", "[カード番号]"),  # JCB
        ("378282246310005", "[カード番号]"),  # American Express
        ("1234 5678 9018", "[マイナンバー]"),
        ("123456789018", "[マイナンバー]"),
        ("〒100-0001", "[住所]"),
        ("東京都千代田区千代田1-1", "[住所]"),
        ("大阪府大阪市北区梅田3丁目1-3", "[住所]"),
        ("横浜市中区山下町1番地", "[住所]"),
        ("#1234 の件", "[注文番号] の件"),
        ("注文番号：98765", "[注文番号]"),
        ("No.55555", "[注文番号]"),
        ("注文番号 A-2041", "[注文番号]"),
    ],
)
def test_each_kind_of_identifier_is_masked(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "ケースの角にひびが入っていました。",
        "2026-11-24に届きました",
        "iPhone 15 Pro のケース",
        "受付番号 HD-26-00042 の件",
        "ラーメン2杯とコーヒー",  # ー is a long vowel here, not a dash
        # Words after "no" or "#" in log lines and agents' commands are not order numbers.
        "no HELPDESK_SMTP_HOST: outgoing mail is written to var/mail as .eml files",
        "no more mail to send",
        "#status resolved",
        "casino night",
        # Process ids in the server's own lines.
        "Started server process [123456]",
        "background worker pid 123456 died (exit code -9)",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_personal_data(text) == text


def test_luhn_and_card_brands_keep_order_numbers_apart() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert card_number("4111111111111111")
    # Luhn-valid, but no card brand has this prefix and length: an order number.
    assert luhn_valid("1234567890128") and not card_number("1234567890128")
    assert mask_personal_data("1234567890128") == "[注文番号]"
    # A card-like number right after an order label is the order number.
    assert mask_card_numbers("注文番号 4111111111111111") == ("注文番号 4111111111111111", False)
    assert my_number_valid("123456789018") and not my_number_valid("123456789012")


def test_card_numbers_are_removed_and_the_rest_kept_as_typed() -> None:
    text = "カードは４１１１ １１１１ １１１１ １１１１です。ご注文１２３４５"
    masked, found = mask_card_numbers(text)
    assert found and masked == f"カードは{CARD_PLACEHOLDER}です。ご注文１２３４５"
    assert mask_card_numbers("カードで払いました") == ("カードで払いました", False)


def test_the_logging_filter_masks_every_record(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("helpdesk.test_masking")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(MaskingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("mail from %s, tel %s", "hanako@example.jp", "090ー1234ー5678")
    finally:
        logger.removeHandler(handler)
    assert seen == ["mail from [メール], tel [電話番号]"]


def test_main_py_installs_the_filter_on_every_handler() -> None:
    from main import log_config

    config = log_config()
    for name, handler in config["handlers"].items():
        assert "mask_personal_data" in handler.get("filters", []), name


async def test_the_gap_log_masks_japanese_dashes_cards_my_number_and_addresses(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    query = (
        "０９０ー１２３４ー５６７８ 4111-1111-1111-1111 1234 5678 9018 東京都千代田区千代田1-1 株価"
    )
    await client.get("/api/faq/search", params={"q": query})
    await app.state.helpdesk.faq.flush_gaps()
    async with app.state.helpdesk.sessions() as session:
        [gap] = (await session.execute(select(FaqGap))).scalars().all()
    assert gap.query == "[電話番号] [カード番号] [マイナンバー] [住所] 株価"


async def test_a_card_number_in_a_form_is_never_stored_and_the_customer_is_told(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    created = await api_inquiry(
        client, description="カード番号 4111 1111 1111 1111 で払えませんでした。"
    )
    [ticket] = await rows(app, Ticket, Ticket.reference == created["reference"])
    [message] = await rows(app, Message, Message.ticket_id == ticket.id)
    assert "4111" not in message.body and CARD_PLACEHOLDER in message.body
    events = await rows(app, TicketEvent, TicketEvent.ticket_id == ticket.id)
    assert "card_number_removed" in [e.kind for e in events]
    from helpdesk.models import Outbox

    [confirmation] = await rows(app, Outbox, Outbox.kind == "ticket_confirmation")
    assert "4111" not in confirmation.text
    assert "安全のため保存せずに削除しました" in confirmation.text
    assert "お送りにならないようお願いいたします" in confirmation.text
    # On the status page, a message sent later too.
    await app.state.helpdesk.tickets.add_customer_message(ticket, "4111-1111-1111-1111 です", {})
    bodies = [m.body for m in await rows(app, Message, Message.ticket_id == ticket.id)]
    assert not [b for b in bodies if "4111" in b]


async def test_a_card_number_in_a_mail_leaves_no_raw_copy(
    app: Starlette, mail_loop: MailLoop
) -> None:
    ticket = await submit_inquiry(app)
    await mail_loop.drain()
    [confirmation] = mail_loop.to("hanako@example.jp")
    reply = mail_loop.answer(
        confirmation, "hanako@example.jp", "カードは 4111 1111 1111 1111 です。"
    )
    await mail_loop.send(reply)
    bodies = [m.body for m in await rows(app, Message, Message.ticket_id == ticket.id)]
    assert len(bodies) == 2 and CARD_PLACEHOLDER in bodies[1] and "4111" not in bodies[1]
    [inbound] = await rows(app, InboundMail)
    assert inbound.status == "processed" and inbound.raw == b""
    # Mail without one keeps its raw copy (retention empties it later).
    await mail_loop.send(
        mail_loop.answer(confirmation, "hanako@example.jp", "よろしくお願いします")
    )
    kept = await rows(app, InboundMail)
    assert kept[1].raw != b""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        alphabet=st.sampled_from(
            "あいうえおカードの番号電話東京都市区町村丁目番地号-－ー ＠@#№.０１２３４５６７８９"
            "0123456789一二三四五六七八九十〇abcXYZno注文ｎｏ"
        ),
        max_size=40,
    )
)
def test_the_quick_path_masks_exactly_what_every_pattern_would(text: str) -> None:
    # mask_personal_data skips its patterns for text holding no digit, @ or kanji numeral
    # (every identifier holds one): the same result as running all of them.
    assert mask_personal_data(text) == _mask_identifiers(normalize(text))
