"""Which words of a question ask, and which tell the situation: clause roles.

A Japanese question puts what it asks in the main clause of its question sentence, and what
the customer tells about their situation around it, in ways the morphology marks:

* earlier sentences: 「昨日商品が届いたのですが、カメラ穴の位置がずれていました。
  返品できますか？」 asks about 返品 (a sentence after the last question adds to what it
  asks: 「何日くらいで届く？北海道です」 asks about 北海道);
* clauses of reason and concession, ended by a conjunctive particle (助詞-接続助詞: 〜から,
  〜けど, 〜が, 〜し), by 〜ので or 〜のに (準体助詞 の + で/に), by a continuative form
  before a comma or a space (「宣伝メールいらない、止めたい」), or by an adjective's
  continuative form before a noun;
* the predicate of an adnominal clause, which only says which thing is meant (届いた in
  「届いた請求書」, 注文した in 「注文した商品」).

A *negated alternative* (〜ではなく, 〜でなく, 〜じゃなくて: 無い after a copula, not after a
restrictive particle as in 〜だけでなく, "not only") says what the customer does *not* ask: its
words are ``excluded`` (and context), and the engine does not search them
(「交換ではなく返金していただけますか」 asks about 返金 alone).

These are *background* (``context``), but for a request followed by a question
(「楽天ペイで支払いたいのですが、対応していますか？」 asks about 楽天ペイ; 〜たい, 〜てほしい,
〜てください ask as a question does) unless it gives a reason (〜したいので). A *condition*
is not background: 〜たら, 〜なら, 〜ば, 〜と after a final form, 〜ても, and adverbial clauses
headed by a time noun (〜した場合, 〜したいとき, 〜した後) restrict what is asked, so an answer
must speak to them (「九州だと到着は発送の何日後？」 asks about 九州). Conditions that lead
into the main clause belong to its focus; everything before a background boundary is
context.

The focus is the main clause of each sentence that asks (a question ending with ？ or a
sentence-final か or の, or a request: 〜てください, 〜てほしい, 〜たい; else the last
sentence with a topical word) — the last clause there with a topical word — and the
conditions leading into it. A noun marked as the topic
(〜は, 〜って) belongs to the main clause of its sentence wherever it stands.

The *predicate* of the question is the last content verb or adjective of the focus (or a
verbal noun followed by する/できる: 返品 in 「返品できますか」) that is not an auxiliary after
〜て (〜てもらう, 〜ている) nor the predicate of an adnominal clause: 払う in 「後払いって
届いた請求書を何日以内に払えばいいの？」 (〜ばいい, 〜たらいい are modal, not conditions).
The engine does not weigh it yet: an uncovered predicate as a feature of the
confidence gained nothing under cross-validation (verbs are paraphrased too often: 出せる
for 発行, 話せる for 問い合わせ; bench/README.md).

Nothing here knows a word of any knowledge base: only parts of speech, conjugation forms and
a handful of function morphemes, so it holds for any Japanese FAQ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

# Parts of speech that end a predicate and carry its conjugation form.
PREDICATE_POS = frozenset({"動詞", "形容詞", "助動詞"})
# Light verbs that make a verbal noun a predicate: 返品(する), 返品(できる).
LIGHT_VERBS = frozenset({"為る", "出来る"})
# Particles that mark a noun as the topic of its sentence: 「発送は」「後払いって」.
TOPIC_PARTICLES = frozenset({"は", "って"})
# Sentence-final particles that make a sentence a question.
QUESTION_PARTICLES = frozenset({"か", "かな", "かしら", "の"})
QUESTION_MARKS = frozenset("?？")
# Predicates that make a sentence a request, which asks as a question does: 〜てください,
# 〜てほしい, 〜たい.
REQUESTS = frozenset({"下さる", "欲しい", "たい"})
# Conjunctive particles of condition (〜ば, 〜と); the others give reasons or concede.
CONDITIONAL_PARTICLES = frozenset({"ば", "と"})


class Boundary(Enum):
    """How a subordinate clause relates to what follows it."""

    CONDITION = "condition"  # restricts the question: 〜たら, 〜なら, 〜ば, 〜と, 〜場合
    REASON = "reason"  # gives a reason: 〜ので, 〜から
    BACKGROUND = "background"  # tells the situation: 〜けど, 〜が, 〜のに, 〜、
    NEGATION = "negation"  # sets an alternative aside: 〜ではなく, 〜じゃなくて


@dataclass(frozen=True, slots=True)
class Morph:
    """What the clause analysis needs of one morpheme: its part of speech (SudachiPy's six
    fields), its lemma and its surface."""

    pos: tuple[str, ...]
    lemma: str
    surface: str


@dataclass(frozen=True, slots=True)
class Roles:
    """Per morpheme, whether it tells context (not the focus of the question), whether the
    customer sets it aside (``excluded``: 交換 in 「交換ではなく返金…」), and the index of
    the question's predicate (None when it has none, as in 「送料いくら？」)."""

    context: list[bool]
    predicate: int | None
    excluded: list[bool]


def _form(morph: Morph) -> str:
    return morph.pos[5] if len(morph.pos) > 5 else "*"


def _bound(nxt: Morph | None) -> bool:
    """A verb or adjective that cannot stand alone follows: 〜ている, 〜てもらう, 〜ばいい,
    〜たらいい. The clause goes on."""
    return nxt is not None and nxt.pos[0] in ("動詞", "形容詞") and nxt.pos[1] == "非自立可能"


def _set_apart(nxt: Morph | None) -> bool:
    return nxt is None or nxt.pos[1] == "読点" or nxt.pos[0] == "空白"


def _negated_copula(morphs: Sequence[Morph], i: int) -> bool:
    """``morphs[i]`` is 無い in its continuative form after a copula or では: 「交換ではなく」
    「代引きでなく」「交換じゃなく(て)」 say *not* this one (a verb's negation is the
    auxiliary ない instead: 「届かなくて」). After a restrictive particle it is "not only":
    「〜だけでなく」「〜ばかりでなく」 ask about both."""
    morph = morphs[i]
    if not (
        morph.pos[0] == "形容詞" and morph.lemma == "無い" and _form(morph).startswith("連用形")
    ):
        return False
    j = i - 1
    while (
        j >= 0
        and morphs[j].pos[0] in ("助詞", "助動詞")
        and (morphs[j].surface in ("は", "で") or morphs[j].lemma == "だ")
    ):
        j -= 1
    return j < i - 1 and j >= 0 and morphs[j].pos[1] != "副助詞"


def _boundary(prev: Morph | None, morph: Morph, nxt: Morph | None) -> Boundary | None:
    """Whether, and how, a subordinate clause ends after ``morph``."""
    pos, form = morph.pos, _form(morph)
    if pos[1] == "接続助詞":
        if morph.surface in ("て", "で"):
            if nxt is not None and nxt.surface == "も" and nxt.pos[0] == "助詞":
                return None  # 〜ても: the condition ends after も
            # 「分けて送る」「書き間違えて」: 〜て joins verbs of one event (manner, means,
            # sequence) unless a comma or a space sets it apart.
            return Boundary.BACKGROUND if _set_apart(nxt) else None
        if _bound(nxt):
            return None
        if morph.surface in CONDITIONAL_PARTICLES:
            return Boundary.CONDITION
        return Boundary.REASON if morph.surface == "から" else Boundary.BACKGROUND
    if (
        pos[0] == "助詞"
        and morph.surface == "も"
        and prev is not None
        and prev.pos[1] == "接続助詞"
        and prev.surface in ("て", "で")
    ):
        return None if _bound(nxt) else Boundary.CONDITION  # 〜ても (〜てもいい goes on)
    if pos[0] == "助動詞" and form.startswith("仮定形"):
        return None if _bound(nxt) else Boundary.CONDITION  # 〜たら, 〜なら
    if prev is not None and prev.pos[1] == "準体助詞":
        if pos[0] == "助動詞" and morph.surface == "で":
            return Boundary.REASON  # 〜ので (の + だ's continuative で)
        if pos[0] == "助詞" and morph.surface == "に":
            return Boundary.BACKGROUND  # 〜のに
    if (
        pos[0] == "助詞"
        and morph.surface == "と"
        and prev is not None
        and prev.pos[0] in PREDICATE_POS
        and _form(prev).startswith("終止形")
    ):
        return Boundary.CONDITION  # 「メールだと」「使うと」
    if pos[0] in PREDICATE_POS and nxt is not None:
        if (form.startswith("終止形") or form.startswith("連用形")) and _set_apart(nxt):
            return Boundary.BACKGROUND  # 「いらない、止めたい」「こわれてた 返金して」
        if pos[0] == "形容詞" and form.startswith("連用形") and nxt.pos[0] == "名詞":
            return Boundary.BACKGROUND  # 「交換ではなく返金」
    if (
        pos[0] == "名詞"
        and pos[2] == "副詞可能"
        and prev is not None
        and prev.pos[0] in PREDICATE_POS
        and _form(prev).startswith("連体形")
    ):
        return Boundary.CONDITION  # 〜した後, 〜したいとき, 〜した場合
    return None


def clause_roles(
    morphs: Sequence[Morph],
    content: Sequence[bool],
    topical: Sequence[bool],
    nouns: Sequence[bool] | None = None,
) -> Roles:
    """Roles of ``morphs`` (all morphemes of a text, in order). ``content[i]``: morpheme
    ``i`` gave a content word; ``topical[i]``: that word says what the text is about (not a
    time, a quantity or a question word); ``nouns[i]``: it is a topical noun (by default,
    any topical word)."""
    if nouns is None:
        nouns = topical
    n = len(morphs)
    sentence = [0] * n
    clause = [0] * n
    topic = [False] * n
    modifier = [False] * n
    candidate = [False] * n
    ends: list[Boundary | None] = []  # how each clause ends (None: the sentence ends)
    questions: set[int] = set()
    requests: set[int] = set()  # clauses that ask for something: 〜したいのですが
    current_sentence = 0
    pending: int | None = None  # the current clause's predicate so far
    for i, morph in enumerate(morphs):
        prev = morphs[i - 1] if i else None
        nxt = morphs[i + 1] if i + 1 < n else None
        sentence[i], clause[i] = current_sentence, len(ends)
        pos = morph.pos
        if content[i] and (
            # a verb or an adjective, but not an auxiliary after 〜て (〜てしまう)
            (
                pos[0] in ("動詞", "形容詞")
                and not (pos[1] == "非自立可能" and prev is not None and prev.pos[1] == "接続助詞")
            )
            # a verbal noun made a predicate: 返品(する), 返品(できる)
            or (pos[2] == "サ変可能" and nxt is not None and nxt.lemma in LIGHT_VERBS)
        ):
            pending = i
            candidate[i] = True
        if (
            content[i]
            and pos[0] == "名詞"
            and nxt is not None
            and nxt.pos[0] == "助詞"
            and nxt.surface in TOPIC_PARTICLES
            and nxt.pos[1] in ("係助詞", "副助詞")
        ):
            topic[i] = True
        if pos[0] == "補助記号" and pos[1] == "句点":
            if morph.surface in QUESTION_MARKS:
                questions.add(current_sentence)
            current_sentence += 1
            ends.append(None)
            pending = None
            continue
        if pos[1] == "終助詞" and morph.surface in QUESTION_PARTICLES:
            questions.add(current_sentence)
        if morph.lemma in REQUESTS and pos[0] in PREDICATE_POS:
            questions.add(current_sentence)
            requests.add(len(ends))
        if (
            pending is not None
            and pos[0] in PREDICATE_POS
            and _form(morph).startswith("連体形")
            and nxt is not None
            and nxt.pos[0] == "名詞"
            and nxt.pos[2] != "副詞可能"
            and content[i + 1]
        ):
            # 「届いた請求書」: the clause says which thing is meant, not what is asked.
            modifier[pending] = True
            candidate[pending] = False
            pending = None
        boundary = _boundary(prev, morph, nxt)
        if _negated_copula(morphs, i) and (nxt is None or nxt.pos[0] == "名詞" or _set_apart(nxt)):
            boundary = Boundary.NEGATION  # 「交換ではなく返金」「代引きでなく、カードで」
        elif (
            pos[1] == "接続助詞" and morph.surface == "て" and i and _negated_copula(morphs, i - 1)
        ):
            boundary = Boundary.NEGATION  # 「交換じゃなくて返金」
        if boundary is not None:
            ends.append(boundary)
            pending = None
    # Words of a clause that sets an alternative aside are not asked at all.
    excluded = [clause[i] < len(ends) and ends[clause[i]] is Boundary.NEGATION for i in range(n)]
    # Only the alternative itself is set aside: the words after the clause's last case
    # particle (紙 in 「請求書を紙じゃなくてメールでもらえますか」); those before it are
    # arguments of the predicate that follows (請求書), and ask. The で and は of the
    # negated copula itself (〜ではなく, 〜でなく) mark no argument.
    for i in range(n):
        if excluded[i] and any(
            clause[j] == clause[i]
            and morphs[j].pos[1] in ("格助詞", "係助詞")
            and morphs[j].surface not in ("で", "は")
            for j in range(i + 1, n)
        ):
            excluded[i] = False
    asked = sorted({sentence[i] for i in range(n) if topical[i] and not excluded[i]})
    if not asked:
        return Roles([False] * n, None, excluded)
    # The sentences that ask (「配送業者はどこですか？ヤマト？佐川？」 asks three times).
    focus = [s for s in asked if s in questions] or asked[-1:]
    if any(s in questions for s in focus):
        # A sentence after the last question adds to it (「何日で届く？北海道です」): it
        # narrows what is asked rather than telling the situation.
        focus += [s for s in asked if s > max(focus)]
    main: dict[int, int] = {}  # focus sentence -> its main clause
    first: dict[int, int] = {}  # focus sentence -> its first clause that is not background
    for i in range(n):
        if topical[i] and sentence[i] in focus:
            main[sentence[i]] = clause[i]
    for s, c in main.items():
        while c > 0 and ends[c - 1] in (Boundary.CONDITION, Boundary.NEGATION):
            # Conditions leading into the main clause belong to the question, and so do the
            # arguments of a negated alternative before it (its alternative stays excluded).
            c -= 1
        if not any(nouns[i] and clause[i] >= c and sentence[i] == s for i in range(n)):
            # 「請求書を捨ててしまいました。もう一度送ってもらえますか？」: the question leaves
            # out what it is about; it is the last thing named before it.
            named = [clause[i] for i in range(n) if nouns[i] and clause[i] < c]
            if named:
                c = named[-1]
        first[s] = c
    # A request before the question asks too, unless it is a reason: 「銀行振込にしたいの
    # ですが、できますか？」 asks about 銀行振込.
    asking = {c for c in requests if c < len(ends) and ends[c] is not Boundary.REASON}

    def asks(i: int) -> bool:
        s = sentence[i]
        if s in first and (clause[i] >= first[s] or topic[i] or clause[i] in asking):
            return True
        return any(first[t] <= clause[i] for t in first if t > s)  # an elided topic

    context = [modifier[i] or excluded[i] or not asks(i) for i in range(n)]
    predicates = [
        i
        for i in range(n)
        if candidate[i] and not context[i] and clause[i] >= main.get(sentence[i], n)
    ]
    return Roles(context, predicates[-1] if predicates else None, excluded)
