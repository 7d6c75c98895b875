"""Clause roles of a question (faq.clauses): which words ask and which tell the situation."""

from __future__ import annotations

import pytest

from faq import Entry, SearchEngine
from faq.analysis import shared_analyzer


def roles(text: str) -> tuple[set[str], set[str], str | None]:
    """(words that ask, words of the situation, the predicate) of ``text``, by surface."""
    tokens = shared_analyzer().tokens(text)
    focus = {t.surface for t in tokens if not t.context}
    context = {t.surface for t in tokens if t.context}
    predicate = next((t.surface for t in tokens if t.predicate), None)
    return focus, context, predicate


@pytest.mark.parametrize(
    ("text", "asks", "tells"),
    [
        # an earlier sentence
        (
            "昨日商品が届いたのですが、カメラ穴の位置がずれていました。返品できますか？",
            {"返品"},
            {"商品", "カメラ", "穴", "位置"},
        ),
        # a reason (〜ので), then a request (〜たいのですが) that asks
        ("クレカ持ってないので銀行振込にしたいのですが、できますか？", {"銀行振込"}, {"クレカ"}),
        # a concession (〜けど)
        ("クレカ払いにしたけど代引きに変えたい", {"代引き"}, {"クレカ払い"}),
        # a reason ending in 〜ので, with a conditional 〜と inside it
        (
            "メールだと返事を待つのが面倒なので、電話で直接話せませんか？",
            {"電話"},
            {"メール", "返事"},
        ),
        # a negated alternative (〜ではなく)
        ("交換ではなく返金していただくことは可能でしょうか。", {"返金"}, {"交換"}),
        # a condition restricts the question: it asks
        ("九州だと到着は発送の何日後？", {"九州", "到着", "発送"}, set()),
        ("連休中に頼んだら発送いつ？", {"連休", "発送"}, set()),
        # the topic (〜は) belongs to the main clause wherever it stands
        ("代引きは、注文したらいつ発送されますか", {"代引き", "注文", "発送"}, set()),
        # the predicate of an adnominal clause only says which thing is meant
        ("後払いって届いた請求書を何日以内に払えばいいの？", {"後払い", "請求書"}, {"届い"}),
        # a question that names nothing asks about the last thing named before it
        (
            "請求書を捨ててしまったみたいで支払いができません。もう一度送ってもらえますか？",
            {"請求書", "支払い"},
            set(),
        ),
        # several questions all ask
        ("配送業者はどこですか？ヤマト？佐川？", {"配送業", "ヤマト", "佐川"}, set()),
        # 〜て joining verbs of one event is not a clause boundary
        ("複数の住所に分けて送ってもらえますか", {"複数", "住所"}, set()),
    ],
)
def test_words_that_ask_and_words_that_tell(text: str, asks: set[str], tells: set[str]) -> None:
    focus, context, _ = roles(text)
    assert asks <= focus, (focus, context)
    assert tells <= context, (focus, context)


@pytest.mark.parametrize(
    ("text", "predicate"),
    [
        ("後払いって届いた請求書を何日以内に払えばいいの？", "払え"),  # 〜ばいい is modal
        ("昨日商品が届いたのですが、カメラ穴の位置がずれていました。返品できますか？", "返品"),
        ("注文した商品はいつ発送されますか", "発送"),  # not 注文, which modifies 商品
        ("送料いくら？", None),
    ],
)
def test_the_predicate_of_the_question(text: str, predicate: str | None) -> None:
    assert roles(text)[2] == predicate


def test_a_single_clause_is_all_focus() -> None:
    for text in ["領収書", "代引き 発送日", "返品って何日以内？", "ラッピングしてほしい"]:
        assert not any(t.context for t in shared_analyzer().tokens(text)), text


def test_adjectival_nouns_used_as_adjectives_do_not_name_the_topic() -> None:
    tokens = {t.surface: t for t in shared_analyzer().tokens("普通何日くらいで届く？面倒なので")}
    assert tokens["普通"].pos != "名詞" and tokens["面倒"].pos != "名詞"
    assert next(t for t in shared_analyzer().tokens("別の住所")).pos == "名詞"  # 別の: a noun
    # Before the polite copula too: 「無理ですか」 asks whether, it names no topic.
    tokens = {t.surface: t for t in shared_analyzer().tokens("キャンセルは無理ですか")}
    assert tokens["無理"].pos != "名詞" and tokens["キャンセル"].pos == "名詞"


def test_an_adjectival_noun_in_a_compound_narrows_the_topic() -> None:
    # 簡易 joined to 包装 is part of the compound's name: an entry about wrapping does not
    # say whether it can be simple.
    tokens = {t.surface: t for t in shared_analyzer().tokens("簡易包装にできますか")}
    assert tokens["簡易"].pos == "名詞"
    # Before a word of quantity or after な it still only describes.
    assert next(t for t in shared_analyzer().tokens("丁寧な包装")).pos != "名詞"
    wrapping = SearchEngine(
        [
            Entry(
                "wrapping",
                "ギフト包装はできますか？",
                "包装のサービスは行なっておりません。",
                alternatives=["プレゼント用に包装してほしい"],
                tags=["包装", "ギフト"],
            ),
            Entry("hours", "営業時間を教えてください", "毎日7時から18時まで営業しています。"),
        ]
    )
    _, evidence = wrapping.explain("簡易包装にできますか")
    assert evidence.missing_word == "簡易" and evidence.missing > 0.5
    assert wrapping.ask("ギフト包装はできますか？").answered


# A small shop of our own: what is tested holds for any knowledge base.
SHOP = [
    Entry(
        "hours",
        "営業時間を教えてください",
        "毎日7時から18時まで営業しています。",
        alternatives=["何時から開いていますか"],
        tags=["営業時間"],
    ),
    Entry(
        "reservation",
        "パンの予約はできますか？",
        "前日の17時までお電話で承ります。",
        alternatives=["予約注文したい"],
        tags=["予約"],
    ),
]


@pytest.fixture(scope="module")
def shop() -> SearchEngine:
    return SearchEngine(SHOP)


def test_an_unknown_word_of_the_situation_is_not_the_word_left_uncovered(
    shop: SearchEngine,
) -> None:
    # 駐車場 asks in the first question: the hours entry does not say it.
    _, asked = shop.explain("駐車場の営業時間は？")
    assert asked.missing_word == "駐車場" and asked.missing > 0.5
    # Told as the situation, it is not what is asked.
    hit, told = shop.explain("駐車場が見つからなかったので、営業時間を教えてください")
    assert hit is not None and hit.entry.id == "hours"
    assert told.missing_word != "駐車場" and told.missing < asked.missing
    assert told.coverage > asked.coverage


def test_kana_auxiliaries_are_not_read_as_an_indexed_word() -> None:
    # 「届いていない」: い + ない are grammar, not 以内 (イナイ), a word of the index.
    engine = SearchEngine([Entry("days", "何日以内に届きますか", "3日以内にお届けします。")])
    words = {w.surface for w in engine.query_words("メールが届いていないのですが")}
    assert "いない" not in words
    # A kana word SudachiPy cannot read is still read by its reading (さいはっそう).
    engine = SearchEngine([Entry("reship", "再発送できますか", "再発送は250円です。")])
    assert engine.search("さいはっそう　できますか")[0].entry.id == "reship"


def test_kana_function_words_are_not_read_as_an_indexed_word() -> None:
    # 「どういうこと」: どういう (an adnominal, 連体詞) is grammar, not 同意 (ドウイ).
    engine = SearchEngine(
        [
            Entry("consent", "同意を取り消せますか", "同意はいつでも取り消せます。"),
            Entry("stock", "在庫はありますか", "在庫は商品ページに表示しています。"),
        ]
    )
    words = {w.surface for w in engine.query_words("在庫がないってどういうこと？")}
    assert not any(word.startswith("どうい") for word in words), words
    assert [hit.entry.id for hit in engine.search("在庫がないってどういうこと？")] == ["stock"]


@pytest.mark.parametrize(
    ("text", "set_aside", "asks"),
    [
        ("交換ではなく返金していただくことは可能でしょうか。", {"交換"}, {"返金"}),
        ("交換じゃなくて返金してほしい", {"交換"}, {"返金"}),
        ("代引きでなく、カードで払いたい", {"代引き"}, {"カード"}),
        ("交換ではなくて、返金してほしい", {"交換"}, {"返金"}),
        # a negative question ("isn't it free?") asks about what it negates
        ("送料無料ではないですか", set(), {"送料", "無料"}),
        # a verb's negation (the auxiliary ない) gives a reason, it sets nothing aside
        ("届かないので返金してほしい", set(), {"返金"}),
        ("在庫がなくて困っています。予約できますか？", set(), {"予約"}),
        # only the alternative is set aside, not the arguments of the predicate before it
        ("請求書を紙じゃなくてメールでもらえますか", {"紙"}, {"請求書", "メール"}),
        ("パンを店頭ではなく配達で受け取りたい", {"店頭"}, {"パン", "配達"}),
    ],
)
def test_a_negated_alternative_is_set_aside(text: str, set_aside: set[str], asks: set[str]) -> None:
    tokens = shared_analyzer().tokens(text)
    assert {t.surface for t in tokens if t.excluded} - {"なく"} == set_aside
    assert asks <= {t.surface for t in tokens if not t.context}


def test_a_sentence_after_the_question_adds_to_what_is_asked(shop: SearchEngine) -> None:
    # 「北海道です」 after the question narrows it, unlike a sentence told before it.
    focus, context, _ = roles("発送してから何日くらいで届く？北海道です")
    assert "北海道" in focus and not context
    focus, context, _ = roles("北海道に住んでいます。発送してから何日くらいで届く？")
    assert "北海道" in context and "発送" in focus
    # So an entry that does not say it leaves it uncovered.
    _, evidence = shop.explain("予約はできますか？駐車場です")
    assert evidence.missing_word == "駐車場" and evidence.missing > 0.5


def test_what_the_customer_sets_aside_is_no_evidence_for_an_entry(shop: SearchEngine) -> None:
    # The reservation entry speaks of 予約, which the customer does not want: it does not
    # answer a question about the opening hours because of it, nor rank first by it.
    hits = shop.search("予約ではなく営業時間を知りたい")
    assert [hit.entry.id for hit in hits] == ["hours"]
    assert shop.search("予約ではなく") == []
    assert not shop.ask("予約じゃなくて駐車場について知りたい").answered


def test_not_only_sets_nothing_aside() -> None:
    # 〜だけでなく: "not only"; 返品 still counts (as the situation), only 交換 asks.
    tokens = shared_analyzer().tokens("返品だけでなく交換もできますか")
    assert not any(t.excluded for t in tokens)
    assert "交換" in {t.surface for t in tokens if not t.context}


def test_the_head_of_an_adverbial_clause_is_not_a_word_of_the_question() -> None:
    # 〜したいとき, 〜した場合, 〜した後: the time noun joins the condition to the sentence.
    for text in [
        "返品したいとき何を送ればいい？",
        "代引きで注文した場合の発送日",
        "注文した後に変更したい",
    ]:
        terms = {t.term for t in shared_analyzer().tokens(text)}
        assert not terms & {"時", "とき", "場合", "後"}, (text, terms)
    # After a noun it still says which case: 「代引きの場合」.
    assert "場合" in {t.term for t in shared_analyzer().tokens("代引きの場合")}
    # The condition still restricts what is asked.
    focus, _, _ = roles("返品したいとき何を送ればいい？")
    assert "返品" in focus
