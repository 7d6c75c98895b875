#!/usr/bin/env python3
"""In-process benchmark of the FAQ search: startup, index build, memory and query latency.

Run from the repository root::

    .venv/bin/python bench/faq_bench.py            # full run, writes bench/results/faq.json
    .venv/bin/python bench/faq_bench.py --quick    # smaller sizes and fewer queries
    .venv/bin/python bench/faq_bench.py --profile 10000   # cProfile of search+ask at one size

What is measured:

* startup: a fresh interpreter imports ``faq``, loads the SudachiPy dictionary, reads the
  shop's knowledge base (``data/faq``) and policy, and builds the index. Each run is a new
  ``python -c`` subprocess, timed inside (perf_counter) and from outside (process wall).
* per knowledge-base size (50, 1,000 and 10,000 entries; the shop's own entries plus
  synthetic but realistic ones from a seeded generator): index build time, RSS delta and
  tracemalloc peak during the build, and the latency of ``engine.search(q, limit=5)`` and
  ``engine.ask(q)`` over a mixed query pool (dev set, kana-only, typos, 200-character,
  out-of-scope, catalogue questions). Each size runs in its own subprocess, so memory
  figures are not polluted by the previous size.

This is a script, not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
DEV_QUERIES = Path("/work/shared/faq-dev-queries.tsv")
KB_DIR = ROOT / "data" / "faq"
POLICY = ROOT / "data" / "shop.toml"
SEED = 20240601
SIZES = (50, 1_000, 10_000)
# p99 targets in milliseconds by knowledge-base size (both search and ask).
P99_TARGET_MS = {1_000: 2.0, 10_000: 10.0}
STARTUP_TARGET_S = 3.0
MAX_QUERY_CHARS = 200  # the HTTP API refuses longer queries

# --------------------------------------------------------------------------------------
# Machine information and small helpers
# --------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import sudachipy

        sudachi = getattr(sudachipy, "__version__", "?")
    except ImportError:
        sudachi = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu_model": cpu,
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sudachipy": sudachi,
        "git_commit": commit or None,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def proc_status_kib(key: str) -> int:
    """A ``kB`` figure (VmRSS, VmHWM...) from /proc/self/status; 0 when unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def percentile(sorted_values: Sequence[int], pct: float) -> int:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(samples_ns: list[int], wall_ns: int) -> dict[str, Any]:
    ordered = sorted(samples_ns)
    return {
        "count": len(ordered),
        "p50_ms": percentile(ordered, 50) / 1e6,
        "p95_ms": percentile(ordered, 95) / 1e6,
        "p99_ms": percentile(ordered, 99) / 1e6,
        "max_ms": ordered[-1] / 1e6 if ordered else 0.0,
        "mean_ms": sum(ordered) / len(ordered) / 1e6 if ordered else 0.0,
        "qps": len(ordered) / (wall_ns / 1e9) if wall_ns else 0.0,
    }


# --------------------------------------------------------------------------------------
# Synthetic knowledge base: a phone-case / accessories shop, like the real one
# --------------------------------------------------------------------------------------

SERIES_PARTS = (
    "ルミ エール フルール ノワール ミエル ソレイユ リュクス ボタニカル マーブル クリア グロウ "
    "ルーチェ ステラ ニュアンス シェル パール ミスト ベルベット ラテ モカ シトラス ピオニー "
    "ダリア リリー ミモザ オーロラ ネオン レトロ ヴィンテージ ガーデン フォレスト オーシャン "
    "サンセット ムーン スター ドット ストライプ チェック レオパード ギンガム フラワー カフェ "
    "ピクニック ハーバー ノルディック モダン アンティーク シンプル"
).split()
PRODUCT_TYPES = (
    "スマホケース 手帳型ケース クリアケース ショルダーケース リング付きケース バンパー "
    "ガラスフィルム 保護フィルム カメラレンズカバー スマホショルダー ストラップ スマホリング "
    "モバイルバッテリー 充電ケーブル ワイヤレス充電器 イヤホンケース AirPodsケース ポーチ "
    "カードケース キーケース ミニ財布 トートバッグ サコッシュ タブレットケース 腕時計バンド"
).split()
MODELS = [
    *(
        f"iPhone {n}{suffix}"
        for n in (12, 13, 14, 15, 16)
        for suffix in ("", " mini", " Pro", " Pro Max", " Plus")
    ),
    "iPhone SE(第3世代)",
    "Galaxy S24",
    "Galaxy S23",
    "Galaxy A54",
    "Pixel 8",
    "Pixel 8a",
    "Pixel 9",
    "Pixel 7a",
    "AQUOS sense8",
    "AQUOS wish3",
    "Xperia 10 V",
    "Xperia 1 V",
    "arrows We",
    "OPPO Reno9 A",
    "Redmi Note 13",
    "iPad Air",
    "iPad mini",
]
COLORS = (
    "ブラック ホワイト ネイビー ベージュ グレージュ くすみピンク ミントグリーン ラベンダー "
    "ボルドー マスタード テラコッタ アイボリー カーキ ブラウン シルバー ゴールド クリア 赤 青 "
    "黄色 緑 紫 水色 オレンジ 白 黒 茶色"
).split()
MATERIALS = {
    "本革": "水や汗を吸いやすい",
    "合皮": "摩擦で表面が剥がれやすい",
    "シリコン": "ほこりが付きやすい",
    "TPU": "紫外線で黄ばみやすい",
    "ポリカーボネート": "硬く傷が目立ちやすい",
    "強化ガラス": "強い衝撃で割れることがある",
    "帆布": "色落ちしやすい",
    "ナイロン": "熱に弱い",
    "アルミ": "角に傷が付きやすい",
    "木製": "湿気で反りやすい",
    "コットン": "縮みやすい",
    "PUレザー": "高温で変形しやすい",
}
SIZES_TXT = "S M L XL ミニ レギュラー ラージ 大きめ 小さめ".split()
PREFECTURES = (
    "北海道 青森県 岩手県 宮城県 秋田県 山形県 福島県 茨城県 栃木県 群馬県 埼玉県 千葉県 東京都 "
    "神奈川県 新潟県 富山県 石川県 福井県 山梨県 長野県 岐阜県 静岡県 愛知県 三重県 滋賀県 京都府 "
    "大阪府 兵庫県 奈良県 和歌山県 鳥取県 島根県 岡山県 広島県 山口県 徳島県 香川県 愛媛県 高知県 "
    "福岡県 佐賀県 長崎県 熊本県 大分県 宮崎県 鹿児島県 沖縄県 離島"
).split()
CARRIERS = "ヤマト運輸 佐川急便 日本郵便 ゆうパケット ネコポス ゆうパック 宅急便コンパクト".split()
PAYMENTS = (
    "クレジットカード 代金引換 コンビニ払い 後払い PayPay AmazonPay 楽天ペイ d払い "
    "ApplePay 銀行振込 ギフトカード ポイント払い"
).split()
EVENTS = (
    "母の日 父の日 クリスマス バレンタイン ホワイトデー 新生活 ブラックフライデー 夏のセール "
    "冬のセール 周年記念 敬老の日 ハロウィン お正月 決算セール"
).split()
DEFECTS = "傷 汚れ 割れ 色ムラ 剥がれ 気泡 ほつれ 変色 へこみ 異臭 歪み 接着不良".split()
TRAITS = "軽い 薄い 丈夫な 柔らかい 滑りにくい 汚れにくい 指紋が目立たない 衝撃に強い".split()
BOILERPLATE = (
    "ご不明な点がございましたら、お問い合わせフォームよりご連絡ください。",
    "詳しくは各商品ページの説明をご確認ください。",
    "予めご了承くださいませ。",
    "何卒よろしくお願いいたします。",
    "在庫状況により、ご希望に添えない場合がございます。",
    "ご不便をおかけし申し訳ございません。",
)

# One topic: category, question templates (the first is the question, the others the
# alternatives), answer sentence templates, and which slots become tags.
Topic = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
TOPICS: tuple[Topic, ...] = (
    (
        "商品について",
        (
            "{p}は{m}に対応していますか？",
            "{m}で{p}は使えますか",
            "{m}用の{p}はありますか",
            "{p}の対応機種を教えてください",
            "{m2}にも{p}は合いますか",
        ),
        (
            "{p}は{m}に対応しております。",
            "カメラ穴の位置やボタンの形状は{m}専用に設計しています。",
            "{m2}をお使いの方は、商品ページの対応機種一覧をご確認ください。",
            "機種によってはケースを付けたままでは一部のボタンが押しにくい場合がございます。",
        ),
        ("p", "m", "対応機種"),
    ),
    (
        "在庫/入荷",
        (
            "{p}の{c}は再入荷しますか？",
            "{c}の{p}が売り切れています",
            "{p}の入荷予定を知りたい",
            "{p}({c})はいつ入荷しますか",
            "{s}サイズの{p}は再販されますか",
        ),
        (
            "{p}の{c}は{month}月{part}に再入荷を予定しております。",
            "入荷のお知らせメールにご登録いただくと、再販開始時にご案内いたします。",
            "入荷数には限りがございますので、お早めにご検討ください。",
            "生産状況により入荷時期が前後する場合がございます。",
        ),
        ("p", "c", "再入荷", "在庫"),
    ),
    (
        "お手入れ",
        (
            "{mat}の{p}のお手入れ方法を教えてください",
            "{p}が汚れてしまった",
            "{mat}は水に濡れても大丈夫ですか",
            "{p}の黄ばみを防ぐ方法はありますか",
            "{mat}製品の保管方法",
        ),
        (
            "{mat}素材の{p}は、柔らかい布で乾拭きしてください。",
            "アルコールやシンナーを含む洗剤は変色の原因となります。",
            "{mat}は{trait}ため、直射日光の当たる場所や高温多湿の場所での保管はお避けください。",
        ),
        ("mat", "p", "お手入れ", "素材"),
    ),
    (
        "サイズ",
        (
            "{p}のサイズを教えてください",
            "{p}の寸法は？",
            "{p}に{s}サイズはありますか",
            "{p}の重さはどのくらいですか",
            "{p}は{m}より大きいですか",
        ),
        (
            "{p}のサイズは縦{h}mm×横{w}mm×厚さ{t}mm、重さは約{g}gです。",
            "{s}サイズは現在取り扱いがございません。",
            "採寸方法により多少の誤差が生じる場合がございます。",
        ),
        ("p", "s", "サイズ", "寸法"),
    ),
    (
        "送料/配送",
        (
            "{pref}への送料はいくらですか",
            "{pref}に{car}で届けてもらえますか",
            "{pref}まで何日で届きますか",
            "{pref}は送料無料になりますか",
            "{car}で配送日を指定できますか",
        ),
        (
            "{pref}への送料は{fee}円(税込)です。",
            "{amount}円以上のご注文で送料無料となります。",
            "{car}でお届けし、発送から{d}日ほどで到着いたします。",
            "配送日時の指定は{car}の場合はお受けできません。",
        ),
        ("pref", "car", "送料", "配送"),
    ),
    (
        "決済方法",
        (
            "{pay}で{p}を購入できますか",
            "{pay}は使えますか",
            "{pay}の手数料はかかりますか",
            "{pay}で分割払いはできますか",
            "{pay}の支払い期限はいつですか",
        ),
        (
            "{pay}でのお支払いに対応しております。",
            "{pay}の決済手数料は{fee}円です。",
            "お支払い期限はご注文日から{d}日以内です。",
            "期限を過ぎた場合、ご注文は自動的にキャンセルとなります。",
        ),
        ("pay", "支払い", "決済"),
    ),
    (
        "名入れ/ギフト",
        (
            "{p}に名入れはできますか",
            "{p}に刻印を入れてほしい",
            "{event}のプレゼントに{p}を贈りたい",
            "名入れした{p}は返品できますか",
            "{p}をギフト包装してもらえますか",
        ),
        (
            "{p}は{n}文字までの名入れに対応しております(1点につき{fee}円)。",
            "名入れ商品はお客様専用にお作りするため、返品・交換はお受けできません。",
            "名入れ商品の発送はご注文から{d}営業日後となります。",
        ),
        ("p", "event", "名入れ", "刻印", "ギフト"),
    ),
    (
        "セール/キャンペーン",
        (
            "{event}のセールはいつからですか",
            "{event}限定の{p}はありますか",
            "{event}のクーポンはどこでもらえますか",
            "{event}セールで{p}は割引になりますか",
            "セール価格の{p}を後から買った",
        ),
        (
            "{event}のセールは{month}月{day}日から開催予定です。",
            "{event}限定デザインの{p}を{n}点ご用意しております。",
            "クーポンはメールマガジン会員様へ配信いたします。",
            "セール開始前にご購入いただいた商品の差額返金はいたしかねます。",
        ),
        ("event", "p", "セール", "クーポン"),
    ),
    (
        "返品/交換",
        (
            "届いた{p}に{defect}がありました",
            "{p}の{defect}は交換してもらえますか",
            "{c}を頼んだのに違う色の{p}が届いた",
            "{p}を開封後に返品できますか",
            "{p}の{defect}は初期不良ですか",
        ),
        (
            "{p}に{defect}があった場合は、商品到着後{d}日以内にご連絡ください。",
            "初期不良と確認できた場合は、送料当店負担にて新品と交換いたします。",
            "お客様のご都合による開封後の返品はお受けできません。",
            "写真を添付していただけますと、確認がスムーズです。",
        ),
        ("p", "defect", "返品", "交換", "不良品"),
    ),
    (
        "予約",
        (
            "{m}用の{p}は予約できますか",
            "{m}の{p}はいつ発売ですか",
            "予約した{p}と通常商品を同時に注文したい",
            "{p}の予約をキャンセルしたい",
            "予約商品の{p}はいつ届きますか",
        ),
        (
            "{m}用の{p}は{month}月{part}より順次発送予定です。",
            "予約商品と通常商品を同時にご注文の場合、全ての商品が揃ってからの発送となります。",
            "予約商品のキャンセルは発送準備前まで承ります。",
        ),
        ("m", "p", "予約", "発売日"),
    ),
    (
        "法人/まとめ買い",
        (
            "{p}を{n}個まとめて注文したい",
            "{p}の法人向け見積もりはできますか",
            "ノベルティ用に{p}を大量注文したい",
            "{p}の卸売りはしていますか",
            "会社名義で{pay}払いできますか",
        ),
        (
            "{p}は{n}個以上のご注文で法人割引を承ります。",
            "お見積もりはお問い合わせフォームよりご依頼ください。",
            "ロゴ入れなどのカスタマイズは{amount}個からお受けしております。",
        ),
        ("p", "法人", "まとめ買い", "見積もり"),
    ),
    (
        "保証/修理",
        (
            "{p}の保証期間はどのくらいですか",
            "{p}が壊れたので修理してほしい",
            "{p}が充電できなくなった",
            "{p}の保証書はありますか",
            "購入から{month}か月で{p}が故障した",
        ),
        (
            "{p}の保証期間はお届けから{month}か月です。",
            "保証期間内の自然故障は無償で交換いたします。",
            "落下や水濡れによる故障は保証の対象外となります。",
        ),
        ("p", "保証", "修理", "故障"),
    ),
    (
        "会員/ポイント",
        (
            "ポイントの有効期限はいつまでですか",
            "{n}ポイントを{p}の購入に使えますか",
            "会員登録をせずに{p}を購入できますか",
            "{rank}会員の特典を教えてください",
            "登録したメールアドレスを変更したい",
        ),
        (
            "ポイントの有効期限は最終ご購入日から{month}か月です。",
            "{rank}会員様はお買い物金額の{pct}%がポイントとして還元されます。",
            "会員登録をせずにゲストとしてご購入いただくことも可能です。",
            "メールアドレスの変更はマイページから行えます。",
        ),
        ("rank", "ポイント", "会員"),
    ),
    (
        "充電/機能",
        (
            "{p}を付けたままワイヤレス充電できますか",
            "{p}はMagSafeに対応していますか",
            "{m}で{p}を使うと充電が遅い",
            "{p}はストラップを付けられますか",
            "{p}にカードは何枚入りますか",
        ),
        (
            "{p}は厚さ{t}mmのため、付けたままワイヤレス充電が可能です。",
            "MagSafe対応の{p}は{c}のみの展開となります。",
            "カードポケットには{n}枚まで収納できます。",
        ),
        ("p", "m", "ワイヤレス充電", "MagSafe"),
    ),
)
RANKS = "ブロンズ シルバー ゴールド プラチナ ダイヤモンド".split()
PARTS_OF_MONTH = "上旬 中旬 下旬".split()


class Catalogue:
    """Seeded generator of product names, slot values and synthetic entries."""

    def __init__(self, rng: random.Random, real_sentences: Sequence[str]) -> None:
        self.rng = rng
        self.real_sentences = list(real_sentences)
        # A catalogue of distinct series names: product names are what makes postings
        # lists (and the fuzzy-matching buckets) of a large shop diverse.
        series: set[str] = set()
        while len(series) < 600:
            parts = rng.sample(SERIES_PARTS, rng.choice((1, 2, 2)))
            series.add("".join(parts))
        self.series = sorted(series)

    def product(self) -> str:
        rng = self.rng
        return f"{rng.choice(self.series)}{rng.choice(PRODUCT_TYPES)}"

    def slots(self) -> dict[str, str]:
        rng = self.rng
        models = rng.sample(MODELS, 2)
        return {
            "p": self.product(),
            "m": models[0],
            "m2": models[1],
            "c": rng.choice(COLORS),
            "mat": rng.choice(list(MATERIALS)),
            "s": rng.choice(SIZES_TXT),
            "pref": rng.choice(PREFECTURES),
            "car": rng.choice(CARRIERS),
            "pay": rng.choice(PAYMENTS),
            "event": rng.choice(EVENTS),
            "defect": rng.choice(DEFECTS),
            "rank": rng.choice(RANKS),
            "trait": "",
            "month": str(rng.randint(1, 12)),
            "part": rng.choice(PARTS_OF_MONTH),
            "day": str(rng.randint(1, 28)),
            "h": str(rng.randint(100, 180)),
            "w": str(rng.randint(60, 90)),
            "t": str(rng.randint(5, 20)),
            "g": str(rng.randint(15, 220)),
            "fee": str(rng.choice((0, 110, 220, 330, 550, 660, 880, 990))),
            "amount": str(rng.choice((3000, 5000, 5500, 8000, 10000))),
            "d": str(rng.randint(1, 7)),
            "n": str(rng.choice((2, 3, 5, 8, 10, 20, 30, 50, 100))),
            "pct": str(rng.choice((1, 2, 3, 5, 10))),
        }

    def entry_fields(self, index: int) -> dict[str, Any]:
        rng = self.rng
        category, questions, answers, tag_keys = rng.choice(TOPICS)
        slots = self.slots()
        slots["trait"] = MATERIALS[slots["mat"]]
        question = questions[0].format(**slots)
        alternatives = [q.format(**slots) for q in rng.sample(questions[1:], rng.randint(1, 4))]
        sentences = [a.format(**slots) for a in answers[: rng.randint(2, len(answers))]]
        # Real vocabulary: a sentence of the shop's own answers, and boilerplate.
        if self.real_sentences and rng.random() < 0.5:
            sentences.append(rng.choice(self.real_sentences))
        if rng.random() < 0.6:
            sentences.append(rng.choice(BOILERPLATE))
        if rng.random() < 0.3:
            sentences.append(f"対象の{slots['p']}は{rng.choice(TRAITS)}のが特長です。")
        tags = [slots.get(key, key) for key in tag_keys]
        if rng.random() < 0.5:
            tags.append(rng.choice(TRAITS))
        return {
            "id": f"syn-{index:05d}",
            "question": question,
            "answer": "\n\n".join(sentences),
            "alternatives": tuple(alternatives),
            "category": category,
            "tags": tuple(dict.fromkeys(tags)),
        }

    def query(self) -> str:
        """A customer question about the catalogue, phrased like (not copied from) entries."""
        rng = self.rng
        _, questions, _, _ = rng.choice(TOPICS)
        slots = self.slots()
        text = rng.choice(questions).format(**slots)
        return rng.choice(("", "すみません、", "質問です。")) + text


def real_sentences(entries: Sequence[Any]) -> list[str]:
    sentences: list[str] = []
    for entry in entries:
        for chunk in entry.answer.replace("\n", "。").split("。"):
            chunk = chunk.strip()
            if 8 <= len(chunk) <= 80:
                sentences.append(chunk + "。")
    return sentences


def build_entries(size: int, seed: int = SEED) -> list[Any]:
    """The shop's real entries topped up with synthetic ones to ``size`` entries."""
    from faq import Entry, load_entries

    real = load_entries(KB_DIR)[:size]
    catalogue = Catalogue(random.Random(seed), real_sentences(real))
    synthetic = [Entry(**catalogue.entry_fields(i)) for i in range(size - len(real))]
    return [*real, *synthetic]


# --------------------------------------------------------------------------------------
# Query pool
# --------------------------------------------------------------------------------------

OUT_OF_SCOPE = (
    "明日の東京の天気は？",
    "おすすめのラーメン屋を教えて",
    "日経平均株価はいくら",
    "カレーの作り方",
    "会社の住所を教えて",
    "採用情報はありますか",
    "今日は何曜日ですか",
    "猫の飼い方について知りたい",
    "Pythonでリストをソートする方法",
    "近くの駅までの行き方",
    "社長の名前は？",
    "hello, do you ship to the US?",
    "あいうえお",
    "？？？",
    "ｗｗｗｗ",
)
LONG_FILLERS = (
    "先日こちらのショップで注文したのですが、",
    "初めて利用するのでよく分からないのですが、",
    "友人へのプレゼントとして購入を考えていて、",
    "以前にも問い合わせたかもしれませんが、",
    "お忙しいところ恐縮ですが、",
    "スマホを買い替えたばかりで、",
)


def read_dev_queries(path: Path = DEV_QUERIES) -> list[tuple[str, str]]:
    """(query, group) pairs of the development set; empty when the file is missing."""
    if not path.exists():
        return []
    pairs: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        pairs.append((fields[0], fields[2] if len(fields) > 2 else ""))
    return pairs


def to_hiragana(text: str) -> str:
    return "".join(chr(ord(ch) - 0x60) if "\u30a1" <= ch <= "\u30f6" else ch for ch in text)


def kana_only(text: str, tokenizer: Any) -> str:
    """The query as a customer typing without kanji conversion would (readings, hiragana)."""
    out: list[str] = []
    for morpheme in tokenizer.tokenize(text):
        reading = morpheme.reading_form()
        surface = morpheme.surface()
        out.append(surface if not reading or reading == "キゴウ" else to_hiragana(reading))
    return "".join(out)


def with_typo(text: str, rng: random.Random) -> str:
    """One keyboard-style typo: drop, double, swap or replace a letter (not punctuation)."""
    positions = [i for i, ch in enumerate(text) if unicodedata.category(ch).startswith("L")]
    if len(positions) < 2:
        return text + text[-1:]
    i = rng.choice(positions[:-1])
    op = rng.choice(("drop", "double", "swap", "replace"))
    if op == "drop":
        return text[:i] + text[i + 1 :]
    if op == "double":
        return text[: i + 1] + text[i] + text[i + 1 :]
    if op == "swap":
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + rng.choice("あいうかきしすとなのはまやらをんアイカクスト") + text[i + 1 :]


def build_query_pool(seed: int = SEED) -> list[dict[str, str]]:
    """The mixed pool of queries, each tagged with its kind."""
    from sudachipy import Dictionary

    rng = random.Random(seed + 1)
    dev = [q for q, _ in read_dev_queries()]
    if not dev:  # the shared dev set is optional; fall back to a few typical questions
        dev = ["注文した商品はいつ発送されますか", "領収書はもらえますか", "返品したい"]
    tokenizer = Dictionary(dict="core").tokenizer()
    pool: list[dict[str, str]] = [{"kind": "dev", "q": q} for q in dev]
    pool += [{"kind": "kana", "q": kana_only(q, tokenizer)} for q in dev]
    pool += [{"kind": "typo", "q": with_typo(q, rng)} for q in dev]
    for _ in range(12):
        parts: list[str] = []
        while sum(map(len, parts)) < MAX_QUERY_CHARS:
            parts.append(rng.choice(LONG_FILLERS))
            parts.append(rng.choice(dev) + "。")
        pool.append({"kind": "long", "q": "".join(parts)[:MAX_QUERY_CHARS]})
    pool += [{"kind": "oos", "q": q} for q in OUT_OF_SCOPE]
    catalogue = Catalogue(random.Random(seed + 2), [])
    pool += [{"kind": "catalog", "q": catalogue.query()} for _ in range(40)]
    return pool


# --------------------------------------------------------------------------------------
# Startup (fresh interpreter per run)
# --------------------------------------------------------------------------------------

STARTUP_CODE = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from faq.analysis import Analyzer
t1 = time.perf_counter()
analyzer = Analyzer()
t2 = time.perf_counter()
from faq import SearchEngine, load_entries, load_policy
entries = load_entries({kb!r})
policy = load_policy({policy!r})
t3 = time.perf_counter()
engine = SearchEngine(entries, policy=policy, analyzer=analyzer)
t4 = time.perf_counter()
engine.ask("注文した商品はいつ届きますか")
t5 = time.perf_counter()
print(json.dumps({{"entries": len(entries), "import_s": t1 - t0, "dictionary_s": t2 - t1,
    "load_kb_s": t3 - t2, "index_s": t4 - t3, "first_ask_s": t5 - t4, "total_s": t4 - t0}}))
"""


def bench_startup(runs: int) -> dict[str, Any]:
    code = STARTUP_CODE.format(root=str(ROOT), kb=str(KB_DIR), policy=str(POLICY))
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - started
        sample = json.loads(done.stdout.strip().splitlines()[-1])
        sample["process_wall_s"] = wall
        samples.append(sample)
    keys = [k for k in samples[0] if k != "entries"]
    median = {k: sorted(s[k] for s in samples)[len(samples) // 2] for k in keys}
    worst = {k: max(s[k] for s in samples) for k in keys}
    return {
        "entries": samples[0]["entries"],
        "runs": samples,
        "first": samples[0],
        "median": median,
        "max": worst,
        "target_s": STARTUP_TARGET_S,
        "meets_target": worst["process_wall_s"] <= STARTUP_TARGET_S,
    }


# --------------------------------------------------------------------------------------
# One knowledge-base size (runs in its own subprocess)
# --------------------------------------------------------------------------------------


def time_queries(
    call: Callable[[str], object], pool: Sequence[dict[str, str]], count: int, warmup: int
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    order = list(pool)
    random.Random(SEED + 3).shuffle(order)
    for i in range(warmup):
        call(order[i % len(order)]["q"])
    samples: list[int] = []
    by_kind: dict[str, list[int]] = defaultdict(list)
    clock = time.perf_counter_ns
    # Garbage-collector pauses are part of the latency (the index holds millions of
    # objects); measure them so a slow tail can be told from slow scoring.
    pauses: list[tuple[int, int]] = []  # (generation, ns)
    gc_started = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = clock()
        else:
            pauses.append((info["generation"], clock() - gc_started[0]))

    gc.callbacks.append(on_gc)
    try:
        wall_start = clock()
        for i in range(count):
            item = order[i % len(order)]
            query = item["q"]
            start = clock()
            call(query)
            elapsed = clock() - start
            samples.append(elapsed)
            by_kind[item["kind"]].append(elapsed)
        wall = clock() - wall_start
    finally:
        gc.callbacks.remove(on_gc)
    kinds = {kind: latency_summary(values, sum(values)) for kind, values in sorted(by_kind.items())}
    summary = latency_summary(samples, wall)
    summary["gc"] = {
        "collections": [sum(1 for g, _ in pauses if g == gen) for gen in range(3)],
        "total_ms": sum(ns for _, ns in pauses) / 1e6,
        "max_pause_ms": max((ns for _, ns in pauses), default=0) / 1e6,
        "share_of_wall": sum(ns for _, ns in pauses) / wall if wall else 0.0,
    }
    return summary, kinds


def bench_size(
    size: int, pool: list[dict[str, str]], count: int, traced: bool, freeze: bool = False
) -> dict[str, Any]:
    from faq import SearchEngine, load_policy
    from faq.analysis import shared_analyzer

    analyzer = shared_analyzer()
    policy = load_policy(POLICY)
    gen_start = time.perf_counter()
    entries = build_entries(size)
    generate_s = time.perf_counter() - gen_start
    # Touch the dictionary and the analyzer's caches so the baseline does not count them.
    for entry in entries[:50]:
        analyzer.tokens(entry.question)
    gc.collect()
    rss_before = proc_status_kib("VmRSS")
    anon_before, file_before = proc_status_kib("RssAnon"), proc_status_kib("RssFile")
    peak_reset = reset_peak_rss()
    build_start = time.perf_counter()
    engine = SearchEngine(entries, policy=policy, analyzer=analyzer)
    build_s = time.perf_counter() - build_start
    hwm_after = proc_status_kib("VmHWM")
    gc.collect()
    rss_after = proc_status_kib("VmRSS")
    anon_after, file_after = proc_status_kib("RssAnon"), proc_status_kib("RssFile")

    result: dict[str, Any] = {
        "entries": len(entries),
        "synthetic_entries": sum(e.id.startswith("syn-") for e in entries),
        "index_terms": len(engine._postings),
        "postings": sum(len(p[0]) for p in engine._postings.values()),
        "longest_postings": max((len(p[0]) for p in engine._postings.values()), default=0),
        "generate_s": generate_s,
        "build_s": build_s,
        "rss_before_mib": rss_before / 1024,
        "rss_delta_mib": (rss_after - rss_before) / 1024,
        # Anonymous memory is the index itself; file-backed pages are the SudachiPy
        # dictionary (memory-mapped, shared between processes, reclaimable).
        "rss_anon_delta_mib": (anon_after - anon_before) / 1024,
        "rss_file_delta_mib": (file_after - file_before) / 1024,
        "rss_after_mib": rss_after / 1024,
        "rss_peak_delta_mib": (hwm_after - rss_before) / 1024 if peak_reset else None,
    }
    if traced:
        # A second build under tracemalloc (slower; its time is not the build time above).
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        traced_start = time.perf_counter()
        twin = SearchEngine(entries, policy=policy, analyzer=analyzer)
        traced_s = time.perf_counter() - traced_start
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del twin
        gc.collect()
        result |= {
            "tracemalloc_peak_mib": (peak - base) / 2**20,
            "tracemalloc_retained_mib": (current - base) / 2**20,
            "traced_build_s": traced_s,
        }

    if freeze:
        # What-if: move the index out of the collector's sight (what an app could do
        # after loading the knowledge base). Off by default: the code is measured as is.
        gc.collect()
        gc.freeze()
    result["gc_freeze"] = freeze
    warmup = min(len(pool), 300)
    search, search_kinds = time_queries(lambda q: engine.search(q, limit=5), pool, count, warmup)
    ask, ask_kinds = time_queries(engine.ask, pool, count, warmup)
    target = P99_TARGET_MS.get(size)
    result |= {
        "search": search,
        "search_by_kind": search_kinds,
        "ask": ask,
        "ask_by_kind": ask_kinds,
        "p99_target_ms": target,
        "meets_target": (
            None if target is None else max(search["p99_ms"], ask["p99_ms"]) <= target
        ),
    }
    return result


def run_worker(args: argparse.Namespace) -> int:
    pool = json.loads(Path(args.pool).read_text(encoding="utf-8"))
    result = bench_size(
        args.worker, pool, args.queries, not args.no_tracemalloc, freeze=args.gc_freeze
    )
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


def run_size_subprocess(
    size: int, pool_file: Path, count: int, traced: bool, tmp: Path, freeze: bool = False
) -> dict[str, Any]:
    out = tmp / f"size-{size}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        str(size),
        "--pool",
        str(pool_file),
        "--out",
        str(out),
        "--queries",
        str(count),
    ]
    if not traced:
        command.append("--no-tracemalloc")
    if freeze:
        command.append("--gc-freeze")
    subprocess.run(command, cwd=ROOT, check=True)
    return json.loads(out.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------
# Profiling
# --------------------------------------------------------------------------------------


def run_profile(size: int, count: int) -> int:
    from faq import SearchEngine, load_policy

    pool = build_query_pool()
    engine = SearchEngine(build_entries(size), policy=load_policy(POLICY))
    for item in pool:
        engine.ask(item["q"])
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(count):
        query = pool[i % len(pool)]["q"]
        engine.search(query, limit=5)
        engine.ask(query)
    profiler.disable()
    for key in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats(key).print_stats(18)
        print(f"## {count} x (search + ask) at {size} entries, sorted by {key}\n")
        print(buffer.getvalue())
    return 0


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"# FAQ search benchmark ({machine['date']})",
        "",
        f"{machine['cpu_model']}, {machine['nproc']} CPUs, Python {machine['python']}, "
        f"SudachiPy {machine['sudachipy']}, commit {machine['git_commit']}, "
        f"load average at start {machine['loadavg_at_start']}",
        "",
    ]
    startup = report.get("startup")
    if startup:
        med, worst, first = startup["median"], startup["max"], startup["first"]
        lines += [
            f"## Startup: shop KB ({startup['entries']} entries), {len(startup['runs'])} "
            f"fresh interpreters (target <= {STARTUP_TARGET_S:g} s)",
            "",
            "| | import faq | dictionary | load KB | build index | in-process total "
            "| process wall | first ask |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, row in (("first run", first), ("median", med), ("max", worst)):
            lines.append(
                f"| {label} | {row['import_s']:.3f} s | {row['dictionary_s']:.3f} s "
                f"| {row['load_kb_s']:.3f} s | {row['index_s']:.3f} s | {row['total_s']:.3f} s "
                f"| {row['process_wall_s']:.3f} s | {row['first_ask_s'] * 1e3:.1f} ms |"
            )
        verdict = "meets" if startup["meets_target"] else "MISSES"
        lines += ["", f"Worst process wall {worst['process_wall_s']:.3f} s: {verdict} target.", ""]
    sizes = report.get("sizes", [])
    if sizes:
        lines += [
            "## Index build and memory",
            "",
            "| entries | terms | postings | longest postings | build | RSS Δ (anon + file) "
            "| RSS peak Δ | tracemalloc peak | tracemalloc retained |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]

        def mib(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} MiB"

        for r in sizes:
            rss = (
                f"{r['rss_delta_mib']:.1f} MiB ({r['rss_anon_delta_mib']:.1f} + "
                f"{r['rss_file_delta_mib']:.1f})"
            )
            lines.append(
                f"| {r['entries']:,} | {r['index_terms']:,} | {r['postings']:,} "
                f"| {r['longest_postings']:,} | {r['build_s']:.2f} s | {rss} "
                f"| {mib(r.get('rss_peak_delta_mib'))} | {mib(r.get('tracemalloc_peak_mib'))} "
                f"| {mib(r.get('tracemalloc_retained_mib'))} |"
            )
        lines += [
            "",
            "RSS Δ: anonymous memory is the index; file-backed pages are the memory-mapped "
            "SudachiPy dictionary touched while analyzing (shared, reclaimable).",
        ]
        lines += [
            "",
            f"## Query latency ({sizes[0]['search']['count']:,} timed queries per row)",
            "",
            "| entries | call | p50 | p95 | p99 | max | queries/s | GC share / max pause "
            "| p99 target |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in sizes:
            target = r["p99_target_ms"]
            for call in ("search", "ask"):
                s = r[call]
                if target is None:
                    verdict = "-"
                else:
                    verdict = f"<= {target:g} ms: {'ok' if s['p99_ms'] <= target else 'MISS'}"
                label = "search(q, limit=5)" if call == "search" else "ask(q)"
                lines.append(
                    f"| {r['entries']:,} | `{label}` | {s['p50_ms']:.3f} ms | {s['p95_ms']:.3f} ms "
                    f"| {s['p99_ms']:.3f} ms | {s['max_ms']:.2f} ms | {s['qps']:,.0f} "
                    f"| {s['gc']['share_of_wall']:.1%} / {s['gc']['max_pause_ms']:.1f} ms "
                    f"| {verdict} |"
                )
        kinds = sorted({k for r in sizes for k in r["ask_by_kind"]})
        lines += [
            "",
            "## ask(q) latency by query kind: p50 / p99 in ms",
            "",
            "| entries | " + " | ".join(kinds) + " |",
            "|---:|" + "---:|" * len(kinds),
        ]
        for r in sizes:
            cells = []
            for kind in kinds:
                s = r["ask_by_kind"].get(kind)
                cells.append("-" if s is None else f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}")
            lines.append(f"| {r['entries']:,} | " + " | ".join(cells) + " |")
        counts = report.get("query_pool", {})
        if counts:
            lines += [
                "",
                "Query pool: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".",
            ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--queries", type=int, default=3_000, help="timed queries per call/size")
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="what-if: gc.freeze() after building the index"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 50 and 1000, 500 queries")
    parser.add_argument("--output", type=Path, default=RESULTS / "faq.json")
    parser.add_argument("--profile", type=int, metavar="SIZE", help="cProfile at one size")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pool", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        return run_worker(args)
    if args.profile is not None:
        return run_profile(args.profile, min(args.queries, 1_000))
    if args.quick:
        args.sizes, args.queries, args.startup_runs = [50, 1_000], 500, 2

    report: dict[str, Any] = {"machine": machine_info()}
    print("startup...", file=sys.stderr, flush=True)
    report["startup"] = bench_startup(args.startup_runs)
    pool = build_query_pool()
    counts: dict[str, int] = defaultdict(int)
    for item in pool:
        counts[item["kind"]] += 1
    report["query_pool"] = dict(counts)
    report["queries_per_size"] = args.queries
    report["sizes"] = []
    with tempfile.TemporaryDirectory(prefix="faq-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pool_file = tmp / "pool.json"
        pool_file.write_text(json.dumps(pool, ensure_ascii=False), encoding="utf-8")
        for size in args.sizes:
            print(f"size {size:,}...", file=sys.stderr, flush=True)
            report["sizes"].append(
                run_size_subprocess(
                    size, pool_file, args.queries, not args.no_tracemalloc, tmp, args.gc_freeze
                )
            )
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(markdown(report))
    print(f"JSON: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
