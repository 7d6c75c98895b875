"""E-mail addresses: one validation and one normal form, for every way an address arrives.

The forms, the API, ``main.py agent add`` and mail that opens a ticket all go through
``normalize_address``, built on ``email-validator`` (syntax of RFC 5321/5322 and IDNA, no DNS
lookups). Refused, whatever the channel: quoted local parts (``"a b"@example.jp``), IP
literals (``a@[127.0.0.1]``), dots at the ends or doubled (``.a@b.jp``, ``a..b@c.jp``),
labels starting or ending with a hyphen (``a@-b.jp``), domains without a dot or reserved for
special use (``localhost``, ``*.local``, ``*.test``, ``*.invalid``), non-ASCII local parts
(our mail is sent without SMTPUTF8).

The normal form is the ASCII address (an internationalized domain in its ``xn--`` form)
in lower case: the whole address, as the helpdesk has always stored it, so that one person
is one customer however they typed their address. (RFC 5321 lets a server treat local parts
as case-sensitive; no mail provider a Japanese shop's customers use does.)
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

__all__ = ["MAX_EMAIL", "AddressError", "is_email_address", "normalize_address"]

MAX_EMAIL = 254


class AddressError(ValueError):
    """Not an address we accept; ``str(error)`` says why (in English, for logs)."""


def normalize_address(value: str) -> str:
    """The address in its normal form (ASCII, lower case).

    Raises:
        AddressError: when ``value`` is not an address we send mail to.
    """
    text = value.strip()
    if not text or len(text) > MAX_EMAIL:
        raise AddressError(f"not an e-mail address: {value!r}")
    try:
        checked = validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=True,  # RFC 5321 lengths: at most 64 characters before the @
        )
    except EmailNotValidError as exc:
        raise AddressError(f"not an e-mail address: {value!r} ({exc})") from None
    address = checked.ascii_email or checked.normalized
    if len(address) > MAX_EMAIL:
        raise AddressError(f"not an e-mail address: {value!r} (too long)")
    return address.lower()


def is_email_address(value: str) -> bool:
    """Whether ``normalize_address`` accepts ``value``."""
    try:
        normalize_address(value)
    except AddressError:
        return False
    return True
