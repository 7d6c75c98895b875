"""FAQ answer quality over the query sets: in-scope answered right, out of scope answered.

Run: ``.venv/bin/python bench/faq_quality.py`` (prints a Markdown table and the misses).
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faq import SearchEngine, load_entries, load_policy  # noqa: E402
from tests.test_faq_quality import DEV_QUERIES, read_queries  # noqa: E402

SETS = {
    "dev (shared/faq-dev-queries.tsv)": DEV_QUERIES,
    "hold-out 1 (tests/data/faq-holdout.tsv)": ROOT / "tests" / "data" / "faq-holdout.tsv",
    "hold-out 2 (tests/data/faq-blind2.tsv)": ROOT / "tests" / "data" / "faq-blind2.tsv",
}


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def main() -> None:
    engine = SearchEngine(
        load_entries(ROOT / "data" / "faq"), policy=load_policy(ROOT / "data" / "shop.toml")
    )
    rows, misses = [], []
    for name, path in SETS.items():
        queries = read_queries(path)
        right = top_right = oos_answered = 0
        in_scope = [q for q in queries if q.keys]
        for q in queries:
            answer = engine.ask(q.query)
            top = answer.hits[0].entry if answer.hits else None
            if not q.keys:
                oos_answered += answer.answered
                if answer.answered:
                    misses.append((name, q.query, "answered out of scope", top.id if top else None))
                continue
            ok_top = top is not None and any(nfkc(k) in nfkc(top.answer) for k in q.keys)
            top_right += ok_top
            right += answer.answered and ok_top
            if not (answer.answered and ok_top):
                why = "not sure enough" if ok_top else "wrong entry first"
                misses.append(
                    (name, q.query, f"{why} ({answer.confidence:.2f})", top.id if top else None)
                )
        oos = len(queries) - len(in_scope)
        rows.append(
            f"| {name} | {right}/{len(in_scope)} ({right / len(in_scope):.0%}) "
            f"| {top_right}/{len(in_scope)} | {oos_answered}/{oos} |"
        )
    print("| set | in scope answered right | right entry ranked first | out of scope answered |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))
    print("\nMisses:")
    for name, query, why, top in misses:
        print(f"- {name.split(' (')[0]}: {query} — {why}, best {top}")


if __name__ == "__main__":
    main()
