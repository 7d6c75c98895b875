"""Passwords: argon2id hashes, rehash on login, the rules of a new password."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from helpdesk.agents.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    hash_password,
    password_problems,
    verify_password,
)


async def test_hashes_are_argon2id_salted_and_verified() -> None:
    first, second = (
        await hash_password("correct horse battery"),
        await hash_password("correct horse battery"),
    )
    assert first.startswith("$argon2id$") and first != second  # a salt each
    assert await verify_password(first, "correct horse battery") == (True, False)
    assert await verify_password(first, "correct horse batterY") == (False, False)
    assert await verify_password(None, "anything") == (False, False)
    assert await verify_password("not a hash", "anything") == (False, False)
    assert await verify_password(first, "x" * (MAX_LENGTH + 1)) == (False, False)


async def test_a_hash_made_with_other_parameters_asks_for_a_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("pass phrase 12")
    assert await verify_password(weak, "pass phrase 12") == (True, True)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", f"{MIN_LENGTH}文字以上"),
        ("x" * (MAX_LENGTH + 1), f"{MAX_LENGTH}文字以下"),
        ("sato-is-the-best-agent", "メールアドレスやお名前"),
        ("ＳＡＴＯ＠ＩＮＴＥＲＩＯＲＬＴＤ．ＪＰ!", "メールアドレスやお名前"),  # full-width too
        ("佐藤太郎のパスワードです", "メールアドレスやお名前"),
        ("aaaaaaaaaaaaaaaa", "同じ文字の繰り返し"),
    ],
)
def test_the_rules_name_each_problem_in_japanese(password: str, problem: str) -> None:
    problems = password_problems(password, email="sato@interiorltd.jp", name="佐藤 太郎")
    assert any(problem in p for p in problems), problems


def test_a_good_password_passes() -> None:
    assert password_problems("correct horse battery", email="sato@x.jp", name="佐藤") == []
