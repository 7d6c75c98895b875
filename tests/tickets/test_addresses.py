"""``helpdesk.tickets.addresses``: one validation of e-mail addresses, with email-validator."""

from __future__ import annotations

import pytest

from helpdesk.tickets.addresses import AddressError, is_email_address, normalize_address


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("Hanako@Example.JP", "hanako@example.jp"),
        (" taro.yamada+shop@mail.example.co.jp ", "taro.yamada+shop@mail.example.co.jp"),
        ("o'brien@example.jp", "o'brien@example.jp"),
        ("taro@日本.jp", "taro@xn--wgv71a.jp"),  # an internationalized domain, sendable
    ],
)
def test_addresses_are_normalized(typed: str, normal: str) -> None:
    assert normalize_address(typed) == normal


# Issue 7, #18: what the old pattern let through (forms) or nothing checked (mail).
REFUSED = [
    "a@[127.0.0.1]",  # an IP literal
    '"a b"@example.jp',  # a quoted local part
    ".a@b.jp",
    "a.@b.jp",
    "a..b@c.jp",
    "a@-b.jp",
    "a@b-.jp",
    "a@b..jp",
    "a@localhost",
    "a@printer.local",
    "a@shop.test",
    "a@example.invalid",
    "a@jp",
    "たろう@example.jp",  # a non-ASCII local part: our mail goes out without SMTPUTF8
    "山田 <a@example.jp>",
    "a@example.jp\nBcc: x@evil.example",  # header injection
    "a@example.jp, b@example.jp",
    "a" * 65 + "@example.jp",
    "a@" + "b" * 250 + ".jp",
    "",
    "@example.jp",
    "a@",
]


@pytest.mark.parametrize("address", REFUSED)
def test_odd_addresses_are_refused(address: str) -> None:
    assert not is_email_address(address)
    with pytest.raises(AddressError):
        normalize_address(address)
