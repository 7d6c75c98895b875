"""FAQ quality over the development queries (../shared/faq-dev-queries.tsv).

In scope, a query counts as right only when the bot *answers* (not merely suggests) and
the answer contains one of the expected phrases; out of scope, it must not answer.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from faq import SearchEngine
from helpdesk.settings import ROOT

DEV_QUERIES = ROOT.parent / "shared" / "faq-dev-queries.tsv"
# In CI (as .ci/run sets) the data beside the checkout is required, not optional.
REQUIRED = os.environ.get("CI", "").lower() in ("1", "true") or (
    os.environ.get("HELPDESK_REQUIRE_BROWSER") == "1"
)


@dataclass(frozen=True)
class DevQuery:
    query: str
    keys: tuple[str, ...]  # empty: out of scope
    group: str


def read_queries(path: Path) -> list[DevQuery]:
    queries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        query, keys, group = line.split("\t")
        queries.append(DevQuery(query, () if keys == "-" else tuple(keys.split("|")), group))
    return queries


@pytest.fixture(scope="module")
def engine() -> SearchEngine:
    return SearchEngine.from_directory(ROOT / "data")


# (file, least share of in-scope queries answered right, most out-of-scope queries answered)
# The hold-out sets were written blind, from the shop's pages only, by other authors. The
# first has since been used to fit the confidence; the second was kept for checking that fit
# (bench/README.md gives the figures), so both now guard against regressions.
QUERY_SETS = [
    pytest.param(DEV_QUERIES, 1.0, 0, id="dev"),
    pytest.param(Path(__file__).parent / "data" / "faq-holdout.tsv", 0.94, 0, id="holdout"),
    pytest.param(Path(__file__).parent / "data" / "faq-blind2.tsv", 0.92, 0, id="blind2"),
]


@pytest.mark.parametrize(("path", "least_right", "most_oos_answered"), QUERY_SETS)
def test_query_set_figures(
    engine: SearchEngine, path: Path, least_right: float, most_oos_answered: int
) -> None:
    if not path.exists():
        if REQUIRED:  # CI: ../shared must be beside the clone; a missing set is a failure
            pytest.fail(f"{path} is missing: CI needs ../shared beside the checkout")
        pytest.skip(f"{path} is not beside the checkout")
    queries = read_queries(path)
    in_scope = [q for q in queries if q.keys]
    out_of_scope = [q for q in queries if not q.keys]
    assert len(in_scope) >= 20 and len(out_of_scope) >= 3

    wrong, answered_oos = [], []
    for q in in_scope:
        answer = engine.ask(q.query)
        text = unicodedata.normalize("NFKC", answer.entry.answer) if answer.entry else ""
        if not (answer.answered and any(unicodedata.normalize("NFKC", k) in text for k in q.keys)):
            wrong.append((q.query, answer.entry.id if answer.entry else None, answer.confidence))
    for q in out_of_scope:
        answer = engine.ask(q.query)
        if answer.answered:
            answered_oos.append((q.query, answer.entry.id if answer.entry else None))

    accuracy = 1 - len(wrong) / len(in_scope)
    assert accuracy >= least_right, f"top-1 {accuracy:.0%}; wrong: {wrong}"
    assert len(answered_oos) <= most_oos_answered, f"out of scope answered: {answered_oos}"


# Near-miss sets: questions in the shop's domain that its pages do not answer (送料, ポイント,
# 再入荷...), written blind from the pages by two other people. The first was used to fit the
# confidence; the second was kept for checking the fit (bench/README.md gives the figures).
# Issue 9's target is at most 3% on both: the fit set meets it (4/143 since compounds such as
# 簡易包装 name their topic); the blind set does NOT yet (4/111, 3.6%; issue 9 stays open).
# These guards hold the levels reached so that nothing regresses.
NEAR_MISS_SETS = [
    pytest.param(Path(__file__).parent / "data" / "faq-nearmiss-fit.tsv", 0.03, id="fit"),
    pytest.param(Path(__file__).parent / "data" / "faq-nearmiss-blind.tsv", 4 / 111, id="blind"),
]


@pytest.mark.parametrize(("path", "most_answered"), NEAR_MISS_SETS)
def test_near_miss_questions_are_not_answered_with_confidence(
    engine: SearchEngine, path: Path, most_answered: float
) -> None:
    queries = read_queries(path)
    assert len(queries) >= 60 and all(not q.keys for q in queries)
    answered = [(q.query, a.entry.id) for q in queries if (a := engine.ask(q.query)).entry]
    assert len(answered) <= most_answered * len(queries), answered


# Answered with confidence, and wrongly, before issue 9. Each must now be "not sure" or
# answered by an entry that does answer it.
@pytest.mark.parametrize(
    ("query", "acceptable"),
    [
        ("クレカ使える？", set()),  # the cash-on-delivery entry read as "no cards"
        ("PayPayで払えますか", set()),
        ("iPhone16に対応したケースはありますか", set()),  # the shipping-cutoff entry
        ("返金", set()),  # the price-change entry
        # The change-of-payment entry holds the pages' only words on cancelling (「一度ご注文
        # をキャンセルし…」「出荷準備が整った場合、キャンセルはできません」).
        ("注文キャンセルしたい", {"payment-change-method"}),
    ],
)
def test_confident_misanswers_of_the_issue(
    engine: SearchEngine, query: str, acceptable: set[str]
) -> None:
    answer = engine.ask(query)
    assert answer.entry is None or answer.entry.id in acceptable, (query, answer.confidence)


# Issue 9's cases: in-scope questions that tell their situation before asking (answered
# since the clause roles of faq.clauses), and near-misses. Those still open are strict
# xfails, so that fixing one is noticed (bench/README.md).
STILL_OPEN = pytest.mark.xfail(strict=True, reason="issue 9, still open: bench/README.md")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Two shipping entries tie, but both open with the concrete shipping date.
        pytest.param("連休中に頼んだら発送いつ～？", "翌営業日|土日祝日"),
        pytest.param(
            "金曜の夜にカード払いで注文したら、発送は週明けになりますか。",
            "翌営業日|土日祝日",
            marks=STILL_OPEN,
        ),
        pytest.param(
            "クレカ持ってないので銀行振込にしたいのですが、できますか？",
            "銀行振込",
        ),
        pytest.param(
            "昨日商品が届いたのですが、カメラ穴の位置がずれていました。返品できますか？",
            "3日以内",
        ),
        pytest.param(
            "メールだと返事を待つのが面倒なので、電話で直接話せませんか？",
            "お電話",
        ),
    ],
)
def test_in_scope_questions_with_their_situation_are_answered(
    engine: SearchEngine, query: str, expected: str
) -> None:
    answer = engine.ask(query)
    text = unicodedata.normalize("NFKC", answer.entry.answer) if answer.entry else ""
    assert answer.answered and any(k in text for k in expected.split("|")), answer.confidence


@pytest.mark.parametrize(
    ("query", "acceptable"),
    [
        # What the customer sets aside (交換) is no evidence for the returns entry.
        pytest.param("交換ではなく返金していただくことは可能でしょうか。", set()),
        pytest.param("後払いって届いた請求書を何日以内に払えばいいの？", set(), marks=STILL_OPEN),
        pytest.param("注文者と別の住所に送れますか", set(), marks=STILL_OPEN),
        pytest.param("ログインできないんだけど", set(), marks=STILL_OPEN),
        # The change-of-payment entry answers it; the cash-only one does not.
        pytest.param(
            "クレカ払いにしたけど代引きに変えたい", {"payment-change-method"}, marks=STILL_OPEN
        ),
    ],
)
def test_near_misses_of_the_issue_are_not_answered(
    engine: SearchEngine, query: str, acceptable: set[str]
) -> None:
    answer = engine.ask(query)
    assert answer.entry is None or answer.entry.id in acceptable, (query, answer.confidence)
