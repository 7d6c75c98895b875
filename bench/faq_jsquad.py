#!/usr/bin/env python3
"""General retrieval check of the FAQ engine over JSQuAD, beside a plain BM25 baseline.

Every JSQuAD paragraph becomes an entry (question = the article's title, answer = the
paragraph) and every question is a query; a query's right entry is its own paragraph.
Reported: MRR@10 and recall@1/@10 of ``SearchEngine.search`` and of a plain BM25
(k1 = 1.2, b = 0.75, one field: title and paragraph) over the same SudachiPy content terms,
in the same run.

Run: ``.venv/bin/python bench/faq_jsquad.py [--split test|valid] [--limit N]``
(the test split: 1,159 paragraphs, 4,420 questions; about 30 s on 2 cores).
Reads ``../shared/external/jglue/jsquad-v1.3/`` beside the checkout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faq import Entry, SearchEngine  # noqa: E402
from faq.analysis import shared_analyzer  # noqa: E402

JSQUAD = ROOT.parent / "shared" / "external" / "jglue" / "jsquad-v1.3"
RESULTS = ROOT / "bench" / "results"
CUTOFF = 10


def load(split: str) -> tuple[list[Entry], list[tuple[str, int]]]:
    """Entries (one per paragraph) and queries as (question, index of its paragraph)."""
    data = json.loads((JSQUAD / f"{split}-v1.3.json").read_text(encoding="utf-8"))["data"]
    entries: list[Entry] = []
    queries: list[tuple[str, int]] = []
    for article in data:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"].split("[SEP]", 1)[-1].strip()
            index = len(entries)
            entries.append(Entry(f"p{index}", article["title"], context))
            queries.extend((qa["question"], index) for qa in paragraph["qas"])
    return entries, queries


class PlainBM25:
    """Okapi BM25 over one field, the same content terms as the engine (lemmas only)."""

    def __init__(self, entries: list[Entry], k1: float = 1.2, b: float = 0.75) -> None:
        analyzer = shared_analyzer()
        self.k1, self.b = k1, b
        self.docs = [
            Counter(t.term for t in analyzer.tokens(f"{e.question}\n{e.answer}")) for e in entries
        ]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lengths) / len(self.docs)
        df: Counter[str] = Counter()
        self.postings: dict[str, list[int]] = defaultdict(list)
        for doc, counts in enumerate(self.docs):
            for term in counts:
                df[term] += 1
                self.postings[term].append(doc)
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def search(self, query: str, limit: int) -> list[int]:
        scores: dict[int, float] = defaultdict(float)
        for term in {t.term for t in shared_analyzer().tokens(query)}:
            for doc in self.postings.get(term, ()):
                tf = self.docs[doc][term]
                norm = self.k1 * (1 - self.b + self.b * self.lengths[doc] / self.avg)
                scores[doc] += self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
        return sorted(scores, key=lambda d: (-scores[d], d))[:limit]


def measure(ranked_lists: list[list[int]], queries: list[tuple[str, int]]) -> dict[str, float]:
    rr = at1 = at10 = 0.0
    for ranked, (_, right) in zip(ranked_lists, queries, strict=True):
        if right in ranked[:CUTOFF]:
            rank = ranked.index(right) + 1
            rr += 1 / rank
            at1 += rank == 1
            at10 += 1
    n = len(queries)
    return {"mrr@10": rr / n, "recall@1": at1 / n, "recall@10": at10 / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "valid"), default="test")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    args = parser.parse_args()
    if not JSQUAD.exists():
        sys.exit(f"{JSQUAD} not found (../shared/external beside the checkout)")
    entries, queries = load(args.split)
    if args.limit:
        queries = queries[: args.limit]
    rows = []
    results: dict[str, dict[str, float]] = {}
    for name, build, search in (
        (
            "engine (SearchEngine.search)",
            lambda: SearchEngine(entries),
            lambda index, q: [int(h.entry.id[1:]) for h in index.search(q, limit=CUTOFF)],
        ),
        ("plain BM25", lambda: PlainBM25(entries), lambda index, q: index.search(q, CUTOFF)),
    ):
        started = time.perf_counter()
        index = build()
        built = time.perf_counter() - started
        started = time.perf_counter()
        ranked = [search(index, q) for q, _ in queries]
        took = time.perf_counter() - started
        figures = measure(ranked, queries)
        results[name] = {**figures, "build_s": built, "ms_per_query": 1000 * took / len(queries)}
        rows.append(
            f"| {name} | {figures['mrr@10']:.4f} | {figures['recall@1']:.3f} "
            f"| {figures['recall@10']:.3f} | {built:.1f} s | {1000 * took / len(queries):.2f} ms |"
        )
    print(f"JSQuAD {args.split}: {len(entries)} paragraphs as entries, {len(queries)} questions\n")
    print("| ranker | MRR@10 | recall@1 | recall@10 | index build | per query |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "faq_jsquad.json"
    out.write_text(json.dumps({"split": args.split, "results": results}, indent=2) + "\n")
    print(f"\nJSON: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
