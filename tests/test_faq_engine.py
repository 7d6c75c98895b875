"""Normalization, analysis and the engine over entries of our own (not only the shop's)."""

from __future__ import annotations

import itertools

import pytest

from faq import Entry, SearchEngine
from faq.analysis import shared_analyzer
from faq.normalize import normalize, to_katakana

ENTRIES = [
    Entry(
        "receipt",
        "領収書は発行できますか？",
        "領収書の発行は行なっておりません。",
        alternatives=["領収書がほしい"],
        category="その他",
        tags=["領収書"],
    ),
    Entry("wrapping", "ラッピングはできますか？", "ラッピングのサービスは行なっておりません。"),
    Entry(
        "returns",
        "返品したいです",
        "返品は商品到着後、3日以内にお問い合わせフォームへご連絡をお願いいたします。",
        alternatives=["誤発送された", "不良品だった"],
    ),
    Entry(
        "cod",
        "代引きで支払えますか",
        "代引きのお支払いは現金のみとなります。",
        alternatives=["代引きでクレジットカードは使えますか"],
    ),
    Entry("phone", "電話で問い合わせできますか", "お電話でのお問い合わせは対応致しかねます。"),
]


@pytest.fixture(scope="module")
def engine() -> SearchEngine:
    return SearchEngine(ENTRIES)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ｸｯｷｰ", "クッキー"),  # half-width kana
        ("クッキ-", "クッキー"),  # hyphen typed for the long vowel
        ("ＡＢＣ　ｄｅｆ", "abc def"),  # full-width ASCII, ideographic space, case
        ("10〜20～30", "10〜20〜30"),  # the wave-dash family
        ("a\x00b\u200bc\x1b", "abc"),  # control and zero-width characters
        ("１６時", "16時"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_katakana_folding() -> None:
    assert to_katakana("へんぴん") == "ヘンピン"


def test_analysis_gives_lemmas_subunits_synonyms_and_readings() -> None:
    tokens = shared_analyzer().tokens("個人情報の削除をお願いしたいです")
    terms = [t.term for t in tokens]
    assert terms[0] == "個人情報" and "削除" in terms
    assert tokens[0].subunits == ("個人", "情報")
    assert "お願い" not in terms and "です" not in terms  # stop filter
    credit, card = shared_analyzer().tokens("クレカ"), shared_analyzer().tokens("クレジットカード")
    assert set(credit[0].synonyms) & set(card[0].synonyms)
    receipt, slip = shared_analyzer().tokens("レシート"), shared_analyzer().tokens("領収書")
    assert set(receipt[0].synonyms) & set(slip[0].synonyms)
    assert slip[0].reading == "リョウシュウショ"


def test_non_honorific_prefix_joins_its_noun() -> None:
    assert [t.term for t in shared_analyzer().tokens("誤発送でした")] == ["誤発送"]
    assert [t.term for t in shared_analyzer().tokens("ご注文")] == ["注文"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("領収書はもらえますか", "receipt"),
        ("レシートください", "receipt"),  # synonym group
        ("りょうしゅうしょ", "receipt"),  # kana only, via readings
        ("領収所ほしい", "receipt"),  # typo
        ("ラッピンクできる？", "wrapping"),  # typo in katakana
        ("ﾗｯﾋﾟﾝｸﾞ", "wrapping"),  # half-width
        ("へんぴん", "returns"),
        ("誤発送でした", "returns"),
        ("代引きでクレカ使える？", "cod"),  # synonym of クレジットカード
        ("でんわ", "phone"),
    ],
)
def test_search_finds_the_entry(engine: SearchEngine, query: str, expected: str) -> None:
    hits = engine.search(query)
    assert hits, query
    assert hits[0].entry.id == expected
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert engine.ask(query).answered


def test_a_synonym_finds_an_entry_that_still_does_not_answer_a_wider_question(
    engine: SearchEngine,
) -> None:
    # クレカ finds the cash-on-delivery entry through クレジットカード, but every phrasing
    # of that entry is about 代引き: whether cards are accepted at all it does not say.
    answer = engine.ask("クレカ使える？")
    assert answer.hits[0].entry.id == "cod"
    assert not answer.answered


@pytest.mark.parametrize("query", ["天気", "株価", "こんにちは", "明日は晴れますか"])
def test_out_of_scope_is_not_answered(engine: SearchEngine, query: str) -> None:
    answer = engine.ask(query)
    assert not answer.answered and answer.entry is None


@pytest.mark.parametrize(
    "query",
    ["", "   ", "あ" * 10_000, "\x00\x01\x02", "😀🙏🎉", "？？？", "領収書" * 3_000],
)
def test_bad_input_never_raises(engine: SearchEngine, query: str) -> None:
    answer = engine.ask(query)
    assert answer.query == query
    assert 0.0 <= answer.confidence <= 1.0
    assert isinstance(engine.search(query, limit=3), list)


def test_limit_and_empty_engine() -> None:
    assert SearchEngine([]).search("領収書") == []
    assert SearchEngine([]).ask("領収書").answered is False
    engine = SearchEngine(ENTRIES)
    assert len(engine.search("ご注文 領収書 ラッピング 返品 電話", limit=2)) == 2
    assert engine.search("領収書", limit=0) == []


def test_entry_accepts_lists_and_stays_hashable() -> None:
    entry = Entry("x", "q", "a", alternatives=["b"], tags=["t"])
    assert entry.alternatives == ("b",) and hash(entry)


# -- knowing when an entry does not answer the question (issue 9) ---------------------------

# A bakery's FAQ: nothing here is the shop's, so what is tested holds for any knowledge base.
BAKERY = [
    Entry(
        "reservation",
        "パンの予約はできますか？",
        "前日の17時までお電話で承ります。",
        alternatives=["食パンを取り置きしてほしい", "予約注文したい"],
        tags=["予約", "取り置き"],
    ),
    Entry(
        "cash-only-delivery",
        "配達のときにクレジットカードは使えますか？",
        "配達のお支払いは現金のみとなります。",
        alternatives=["配達でカード払いはできますか", "配達の支払いは現金だけですか"],
        tags=["配達", "現金", "クレジットカード", "カード払い"],
    ),
    Entry(
        "hours",
        "営業時間を教えてください",
        "毎日7時から18時まで営業しています。定休日は火曜日です。",
        alternatives=["何時から開いていますか", "定休日はいつですか"],
        tags=["営業時間", "定休日", "開店"],
    ),
]


@pytest.fixture(scope="module")
def bakery() -> SearchEngine:
    return SearchEngine(BAKERY)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("パンの予約はできますか", "reservation"),
        ("営業時間は何時までですか", "hours"),
        ("配達のときカード払いできますか", "cash-only-delivery"),
    ],
)
def test_the_entries_own_questions_are_answered(
    bakery: SearchEngine, query: str, expected: str
) -> None:
    answer = bakery.ask(query)
    assert answer.answered and answer.entry is not None and answer.entry.id == expected


@pytest.mark.parametrize(
    "query",
    [
        # A specific word no entry covers: the reservation entry does not say what a
        # cake costs, nor the hours entry anything about parking.
        "ケーキの予約の料金はいくらですか",
        "駐車場の営業時間は？",
        # Every phrasing of the card entry is about delivery: it does not say whether
        # cards are accepted in the shop.
        "クレジットカードは使えますか",
    ],
)
def test_an_entry_that_does_not_answer_the_question_is_not_sure(
    bakery: SearchEngine, query: str
) -> None:
    answer = bakery.ask(query)
    assert not answer.answered, (query, answer.confidence, answer.hits[:1])
    assert answer.suggestions  # the nearest entries are still offered


def test_evidence_names_the_word_left_uncovered(bakery: SearchEngine) -> None:
    hit, evidence = bakery.explain("ケーキの予約の料金はいくらですか")
    assert hit is not None and hit.entry.id == "reservation"
    assert evidence.missing > 0.5 and evidence.missing_word in {"ケーキ", "料金"}
    _, card = bakery.explain("クレジットカードは使えますか")
    _, delivery = bakery.explain("配達のときクレジットカードは使えますか")
    assert card.unasked > 0.5 > delivery.unasked  # 配達 is asked, or left unasked


@pytest.mark.parametrize(
    ("query", "searched_as"),
    [
        ("ラッピンクしてほしい", "ラッピングしてほしい"),  # typo
        ("らっぴんぐ", "ラッピング"),  # kana for katakana
        ("りょうしゅうしょ", "領収書"),  # kana for kanji
        ("領収書", None),  # nothing changed
    ],
)
def test_the_answer_says_what_was_searched(
    engine: SearchEngine, query: str, searched_as: str | None
) -> None:
    answer = engine.ask(query)
    assert answer.hits and answer.searched_as == searched_as


def test_a_homophone_picked_by_the_input_method_is_read_as_the_indexed_word() -> None:
    engine = SearchEngine([Entry("ship", "発送はいつですか", "当日発送です。"), *ENTRIES])
    answer = engine.ask("発想はいつですか")  # 発想 (idea) for 発送 (shipping): both はっそう
    assert answer.hits[0].entry.id == "ship"
    assert answer.searched_as == "発送はいつですか"


def test_a_word_read_from_kana_brings_its_sub_units_as_a_typed_compound_does() -> None:
    # でんわばんごう is read as 電話番号, which only the tags say; the answer says 電話,
    # a sub-unit of it, and is credited with it as when the customer types 電話番号.
    engine = SearchEngine(
        [
            Entry(
                "phone",
                "電話で問い合わせできますか",
                "お電話は承っておりません。",
                tags=["電話番号"],
            ),
            Entry("hours", "営業時間は？", "10時から18時までです。"),
        ]
    )
    typed = engine.explain("電話番号を教えてください")[1]
    hit, read = engine.explain("でんわばんごうおしえてください")
    assert hit is not None and hit.entry.id == "phone"
    assert read.in_answer > 0 and abs(read.in_answer - typed.in_answer) < 0.2
    assert engine.ask("でんわばんごうおしえてください").searched_as == "電話番号おしえてください"


def test_numbers_and_questions_of_quantity_do_not_name_the_topic() -> None:
    tokens = shared_analyzer().tokens("返品って何日以内？3回目です")
    adverbial = {t.term: t.adverbial for t in tokens}
    assert adverbial["返品"] is False
    assert adverbial["何日"] and adverbial["3"] and adverbial["回"]


def test_a_terse_answer_still_answers_its_own_question() -> None:
    # 「はい、承ります。」 names nothing of the question; its entry answers it all the same.
    engine = SearchEngine(
        [
            Entry("wrap", "ギフト包装はできますか", "はい、承ります。"),
            Entry("hours", "営業時間は？", "10時から18時までです。"),
        ]
    )
    answer = engine.ask("ギフト包装してもらえる？")
    assert answer.answered and answer.entry is not None and answer.entry.id == "wrap"


def test_an_inflected_verb_the_index_knows_is_not_read_as_a_noun_spelt_alike() -> None:
    # 「つながりますか」: SudachiPy reads 繋がる, which the phone entry says; the kana also
    # spell the noun 繋がり of another entry, which must not replace it.
    engine = SearchEngine(
        [
            Entry("phone", "電話窓口はありますか", "お電話は承っておりません。", tags=["つながる"]),
            Entry("links", "外部サイトとのつながりは？", "リンク先の内容は管理しておりません。"),
        ]
    )
    assert engine.search("電話つながりますか")[0].entry.id == "phone"
    assert "繋がる" in next(
        w.terms for w in engine.query_words("電話つながりますか") if w.surface == "つながり"
    )
    # The noun said alone still finds the entry that says it.
    assert engine.search("つながり")[0].entry.id == "links"


def test_entries_opening_with_the_same_computed_answer_are_no_rival() -> None:
    # Two entries that both open with the concrete shipping date: whichever ranks first,
    # the customer reads the same date first, so their tie is not doubt about the answer.
    def shop(dynamic: str | None) -> SearchEngine:
        return SearchEngine(
            [
                Entry(
                    "cutoff", "注文はいつまでなら当日発送ですか", "16時までです。", dynamic=dynamic
                ),
                Entry(
                    "days", "注文した商品はいつ発送されますか", "最短当日です。", dynamic=dynamic
                ),
                Entry("gift", "ギフト包装はできますか", "承っておりません。"),
            ]
        )

    _, tied = shop(None).explain("発送はいつ？")
    _, same = shop("ship_date").explain("発送はいつ？")
    assert tied.lead < 0.1 and same.lead > 0.9
    # An entry with another supplement, or none, is still a rival.
    mixed = SearchEngine(
        [
            Entry(
                "cutoff", "注文はいつまでなら当日発送ですか", "16時までです。", dynamic="ship_date"
            ),
            Entry("days", "注文した商品はいつ発送されますか", "最短当日です。"),
        ]
    )
    _, rival = mixed.explain("発送はいつ？")
    assert rival.lead < 0.1
