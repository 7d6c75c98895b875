"""Agents' passwords: argon2id through argon2-cffi, and the rules a new password follows.

Hashing runs in a worker thread (``asyncio.to_thread``): an argon2 hash takes tens of
milliseconds and 64 MiB of memory by design, which must not stall the event loop. At most
``HASH_SLOTS`` hashes run at once, so a burst of logins cannot take the server's memory.

An unknown address is checked against a dummy hash, so that a login for an address no
agent has takes about as long as one with a wrong password (no account enumeration by
timing).
"""

from __future__ import annotations

import asyncio
import threading
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
#: Longer passwords are refused: hashing cost grows with the input (argon2 has no limit).
MAX_LENGTH = 256
#: Argon2 hashes at once in this process (each takes 64 MiB with the default parameters).
HASH_SLOTS = 2

PASSWORD_RULES = (
    f"{MIN_LENGTH}文字以上{MAX_LENGTH}文字以下",
    "メールアドレスやお名前をそのまま含まないもの",
    "同じ文字の繰り返しだけではないもの",
)

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (the library's default)
_slots = threading.BoundedSemaphore(HASH_SLOTS)
_DUMMY_HASH = _hasher.hash("madoguchi: no agent has this password")


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def password_problems(password: str, *, email: str = "", name: str = "") -> list[str]:
    """What is wrong with ``password`` as a new password, in Japanese (empty when fine)."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"パスワードは{MIN_LENGTH}文字以上にしてください。")
    elif len(password) > MAX_LENGTH:
        problems.append(f"パスワードは{MAX_LENGTH}文字以下にしてください。")
    normal = _normal(password)
    local = _normal(email).partition("@")[0]
    personal = [p for p in (_normal(email), local, _normal(name).replace(" ", "")) if len(p) >= 3]
    if any(part in normal for part in personal):
        problems.append("メールアドレスやお名前を含まないパスワードにしてください。")
    if password and len(set(password)) == 1:
        problems.append("同じ文字の繰り返しではないパスワードにしてください。")
    return problems


def _hash(password: str) -> str:
    with _slots:
        return _hasher.hash(password)


def _verify(stored: str | None, password: str) -> tuple[bool, bool]:
    with _slots:
        try:
            _hasher.verify(stored or _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, False
    if stored is None:
        return False, False
    return True, _hasher.check_needs_rehash(stored)


async def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (computed off the event loop)."""
    return await asyncio.to_thread(_hash, password)


async def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """``(matches, needs_rehash)``; with no stored hash, a dummy one is checked (same time)
    and the answer is no. ``needs_rehash``: the hash was made with other parameters than
    the current ones, and should be replaced now that the password is known."""
    if len(password) > MAX_LENGTH:
        return False, False
    return await asyncio.to_thread(_verify, stored, password)
