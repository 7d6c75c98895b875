#!/usr/bin/env python3
"""Fit the FAQ bot's confidence model (``faq/engine.py``) on labelled query sets.

Each query of the fitting sets (the dev set, hold-out 1 and near-miss set 1) gives the
evidence of its best entry (``SearchEngine.explain``: coverage, lead, matched, missing,
unasked, in_answer; words of the situation already weighed by ``CONTEXT_WEIGHT``) and a
label: 1 when it is in scope and the best entry is the right one, 0 when
answering would be wrong (out of scope, near-miss, or the wrong entry ranked first). An
L2-regularized logistic regression (Newton's method, numpy) gives the weights; the script
prints them as the constants to paste into ``faq/engine.py`` and the figures each set would
get at the answering threshold. The sets kept for checking (hold-out 2, near-miss set 2)
are never read here.

Run: ``.venv/bin/python bench/faq_fit.py [--l2 1.0] [--negative-weight 1.0] [--dump]``
(the fit in ``faq/engine.py``: ``--l2 1 --negative-weight 1``, answering at 0.5).
``--cross-validate`` prints out-of-fold figures (5 folds) per penalty and class weight.

``--all-sets`` fits on every labelled set instead (``ALL_SETS``: the three above, hold-outs
2-4 and near-miss sets 2-5), and with ``--cross-validate`` the folds are the sets themselves
(leave one set out: each set is scored by a model fitted on all the others, as a new blind
set would be), printing per set what it would get at 0.5 and, for the older and the fresh
sets (``FRESH``), the share of in-scope queries answered right, answered with the wrong
entry, and of near-miss queries answered, with the ranking quality (AUC of in-scope right
against near-miss) that no threshold changes. ``--cross-validate --current`` scores the same
way with the weights in ``faq/engine.py`` (fitted on the three sets only).
"""

from __future__ import annotations

import argparse
import math
import sys
import unicodedata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faq import SearchEngine  # noqa: E402
from faq.engine import ANSWER_THRESHOLD, CONFIDENCE_BIAS, WEIGHTS, Evidence  # noqa: E402
from tests.test_faq_quality import DEV_QUERIES, read_queries  # noqa: E402

DATA = ROOT / "tests" / "data"
FIT_SETS = {
    "dev": DEV_QUERIES,
    "hold-out 1": DATA / "faq-holdout.tsv",
    "near-miss 1": DATA / "faq-nearmiss-fit.tsv",
}
# Every labelled set (``--all-sets``); the last eight were written blind on 2026-12-02.
ALL_SETS = {
    **FIT_SETS,
    "hold-out 2": DATA / "faq-blind2.tsv",
    "near-miss 2": DATA / "faq-nearmiss-blind.tsv",
    "near-miss 3": DATA / "faq-nearmiss-blind3.tsv",
    "hold-out 3": DATA / "faq-holdout3.tsv",
    "hold-out 4": DATA / "faq-holdout4.tsv",
    "near-miss 4": DATA / "faq-nearmiss-blind4.tsv",
    "near-miss 5": DATA / "faq-nearmiss-blind5.tsv",
    "hold-out 5": DATA / "faq-holdout5.tsv",
    "near-miss 6": DATA / "faq-nearmiss-blind6.tsv",
    "hold-out 6": DATA / "faq-holdout6.tsv",
    "near-miss 7": DATA / "faq-nearmiss-blind7.tsv",
}
FRESH = {
    "hold-out 3",
    "hold-out 4",
    "near-miss 4",
    "near-miss 5",
    "hold-out 5",
    "near-miss 6",
    "hold-out 6",
    "near-miss 7",
}
NAMES = ("COVERAGE", "LEAD", "MATCHED", "MISSING", "UNASKED", "IN_ANSWER")


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def fit(x: np.ndarray, y: np.ndarray, sample: np.ndarray, l2: float) -> np.ndarray:
    """Weights (bias last) of a logistic regression by Newton's method; the bias is not
    penalized."""
    design = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-design @ w))
        gradient = design.T @ (sample * (p - y)) + penalty * w
        hessian = (design * (sample * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def search(
    rows: list,
    x: np.ndarray,
    y: np.ndarray,
    max_near_miss: float,
    penalties: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0),
    weights: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
) -> np.ndarray:
    """The fit, over a small grid of penalties and class weights, that answers the most
    in-scope queries right (dev first) once its bias is shifted to keep the near-miss
    queries answered at or under ``max_near_miss`` and no out-of-scope query answered."""
    near = np.array([r[1] == "near" for r in rows])
    oos = np.array([r[1] == "oos" for r in rows])
    dev = np.array([r[0] == "dev" and r[1] == "in" for r in rows])
    inside = np.array([r[1] == "in" for r in rows])
    allowed = math.floor(max_near_miss * near.sum())
    best: tuple[tuple[int, int], np.ndarray] | None = None
    for l2 in penalties:
        for weight in weights:
            w = fit(x, y, np.where(y == 1, 1.0, weight), l2)
            z = x @ w[:-1] + w[-1]
            # The highest z among queries that must not be answered, past the allowance.
            refused = np.sort(z[near])[::-1]
            ceiling = max(refused[allowed] if allowed < len(refused) else -np.inf, z[oos].max())
            # The boundary halfway between that and the next query to answer above it.
            above = z[inside & (y == 1) & (z > ceiling)]
            boundary = (ceiling + above.min()) / 2 if len(above) else ceiling + 1e-6
            shifted = w.copy()
            shifted[-1] -= boundary
            answered = z - boundary >= 0
            score = (
                int((answered & dev & (y == 1)).sum()),
                int((answered & inside & (y == 1)).sum()),
            )
            if best is None or score > best[0]:
                best = (score, shifted)
    assert best is not None
    return best[1]


def cross_validate(
    rows: list, x: np.ndarray, y: np.ndarray, max_near_miss: float, folds: int = 5
) -> None:
    """Out-of-fold figures per (penalty, class weight): an honest estimate of how the fit
    holds on queries it has not seen."""
    rng = np.random.default_rng(9)
    fold = rng.integers(0, folds, len(rows))
    near = np.array([r[1] == "near" for r in rows])
    inside = np.array([r[1] == "in" for r in rows])
    for l2 in (0.03, 0.1, 0.3, 1.0, 3.0, 10.0):
        for weight in (0.5, 1.0, 2.0, 3.0):
            z = np.empty(len(rows))
            for k in range(folds):
                train = fold != k
                w = fit(x[train], y[train], np.where(y[train] == 1, 1.0, weight), l2)
                z[~train] = x[~train] @ w[:-1] + w[-1]
            allowed = math.floor(max_near_miss * near.sum())
            ceiling = np.sort(z[near])[::-1][allowed]
            right = int(((z > ceiling) & inside & (y == 1)).sum())
            total = int(inside.sum())
            # As fitted, answering at 0.5 (z >= 0) with no shift of the bias.
            plain = int(((z >= 0) & inside & (y == 1)).sum())
            near_answered = int(((z >= 0) & near).sum())
            oos_answered = int(((z >= 0) & ~inside & ~near).sum())
            print(
                f"  l2={l2:<5} weight={weight:<4} out-of-fold in scope right {right}/{total} "
                f"at {allowed} near-miss answered; at 0.5: in scope right {plain}/{total}, "
                f"near-miss answered {near_answered}/{int(near.sum())}, "
                f"out of scope answered {oos_answered}"
            )


def leave_one_set_out(
    rows: list, x: np.ndarray, y: np.ndarray, fixed: np.ndarray | None = None
) -> None:
    """Out-of-fold figures with the sets as folds, per penalty and class weight (or for the
    ``fixed`` weights, bias last): each set is scored by a model fitted on the others."""
    names = np.array([r[0] for r in rows])
    kind = np.array([r[1] for r in rows])
    fresh = np.isin(names, sorted(FRESH))
    grid = (
        [(None, None)]
        if fixed is not None
        else [(l2, weight) for l2 in (0.3, 1.0, 3.0, 10.0) for weight in (0.5, 1.0, 2.0)]
    )
    for l2, weight in grid:
        z = np.empty(len(rows))
        for name in dict.fromkeys(names):
            train = names != name
            if fixed is not None:
                w = fixed
            else:
                assert l2 is not None and weight is not None
                w = fit(x[train], y[train], np.where(y[train] == 1, 1.0, weight), l2)
            z[~train] = x[~train] @ w[:-1] + w[-1]
        cells = []
        for part in (~fresh, fresh):
            inside = part & (kind == "in")
            near = part & (kind == "near")
            right = ((z >= 0) & inside & (y == 1)).sum() / max(inside.sum(), 1)
            wrong = ((z >= 0) & inside & (y == 0)).sum() / max(inside.sum(), 1)
            answered = ((z >= 0) & near).sum() / max(near.sum(), 1)
            good, bad = z[inside & (y == 1)], z[near]
            auc = float((good[:, None] > bad[None, :]).mean()) if len(good) and len(bad) else 0
            cells.append(f"{right:.1%} / {wrong:.1%} / {answered:.1%} (AUC {auc:.3f})")
        per_set = []
        for name in dict.fromkeys(names):
            index = names == name
            if (index & (kind == "in")).any():
                good = int(((z >= 0) & index & (kind == "in") & (y == 1)).sum())
                per_set.append(f"{name} {good}/{int((index & (kind == 'in')).sum())}")
            if (index & (kind == "near")).any():
                bad = int(((z >= 0) & index & (kind == "near")).sum())
                per_set.append(f"{name} {bad}/{int((index & (kind == 'near')).sum())}")
            oos = int(((z >= 0) & index & (kind == "oos")).sum())
            if oos:
                per_set.append(f"{name} out of scope answered {oos}")
        label = "current weights" if fixed is not None else f"l2={l2:<4} weight={weight:<4}"
        print(f"  {label}: older sets {cells[0]}; fresh sets {cells[1]}")
        print(f"    {', '.join(per_set)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--l2", type=float, default=1.0, help="ridge penalty on the weights")
    parser.add_argument(
        "--negative-weight",
        type=float,
        default=1.0,
        help="weight of a query that must not be answered, relative to one that must",
    )
    parser.add_argument("--dump", action="store_true", help="print every query's features")
    parser.add_argument(
        "--max-near-miss",
        type=float,
        default=None,
        help="search the ridge penalty and the class weight for the most in-scope queries "
        "answered right with at most this share of near-miss queries answered (bias shifted "
        "so that 0.5 stays the answering point)",
    )
    parser.add_argument("--cross-validate", action="store_true", help="out-of-fold figures")
    parser.add_argument(
        "--all-sets",
        action="store_true",
        help="fit on every labelled set (cross-validate leaving one set out)",
    )
    parser.add_argument(
        "--current",
        action="store_true",
        help="with --all-sets --cross-validate: score the weights in faq/engine.py",
    )
    parser.add_argument(
        "--fixed",
        action="store_true",
        help="with --max-near-miss: keep --l2 and --negative-weight instead of searching them",
    )
    args = parser.parse_args()
    engine = SearchEngine.from_directory(ROOT / "data")
    rows: list[tuple[str, str, str, Evidence, int, str]] = []
    sets = ALL_SETS if args.all_sets else FIT_SETS
    for name, path in sets.items():
        for q in read_queries(path):
            hit, evidence = engine.explain(q.query)
            right = hit is not None and any(nfkc(k) in nfkc(hit.entry.answer) for k in q.keys)
            kind = "in" if q.keys else ("near" if q.group.startswith("nearmiss") else "oos")
            rows.append((name, kind, q.query, evidence, int(right), hit.entry.id if hit else "-"))
    names = [n.lower() for n in NAMES]
    x = np.array([e.vector() for _, _, _, e, _, _ in rows])
    y = np.array([label for *_, label, _ in rows], dtype=np.float64)
    if args.cross_validate and args.all_sets:
        current = np.array([*WEIGHTS, CONFIDENCE_BIAS]) if args.current else None
        print("Leave one set out: in scope right / wrong entry answered / near-miss answered")
        leave_one_set_out(rows, x, y, current)
        return
    if args.cross_validate:
        cross_validate(rows, x, y, args.max_near_miss or 0.03)
        return
    if args.max_near_miss is not None:
        if args.fixed:
            w = search(rows, x, y, args.max_near_miss, (args.l2,), (args.negative_weight,))
        else:
            w = search(rows, x, y, args.max_near_miss)
    else:
        sample = np.where(y == 1, 1.0, args.negative_weight)
        w = fit(x, y, sample, args.l2)
    z = x @ w[:-1] + w[-1]
    print("Fitted on", ", ".join(f"{n} ({sum(r[0] == n for r in rows)})" for n in sets))
    for name, value in zip([n.upper() for n in names], w[:-1], strict=True):
        print(f"CONFIDENCE_{name} = {value:.3f}")
    print(f"CONFIDENCE_BIAS = {w[-1]:.3f}")
    answered = 1 / (1 + np.exp(-z)) >= ANSWER_THRESHOLD
    print("\n| set | in scope answered right | out of scope answered | near-miss answered |")
    print("|---|---:|---:|---:|")
    for name in sets:
        index = [i for i, r in enumerate(rows) if r[0] == name]
        cells = []
        for kind in ("in", "oos", "near"):
            chosen = [i for i in index if rows[i][1] == kind]
            good = sum(answered[i] and (kind != "in" or y[i] == 1) for i in chosen)
            cells.append(f"{good}/{len(chosen)}" if chosen else "-")
        print(f"| {name} | {' | '.join(cells)} |")
    print("\nThreshold sweep: dev right, hold-out 1 right, near-miss answered, oos answered")
    for threshold in np.arange(0.3, 0.86, 0.05):
        cut = 1 / (1 + np.exp(-z)) >= threshold
        cells = []
        for name in ("dev", "hold-out 1"):
            chosen = [i for i, r in enumerate(rows) if r[0] == name and r[1] == "in"]
            cells.append(f"{sum(cut[i] and y[i] == 1 for i in chosen)}/{len(chosen)}")
        near = sum(cut[i] for i, r in enumerate(rows) if r[1] == "near")
        oos = sum(cut[i] for i, r in enumerate(rows) if r[1] == "oos")
        print(f"  {threshold:.2f}: {' '.join(cells)} {near} {oos}")
    if args.dump:
        print("\nset\tkind\tright\tanswered\t" + "\t".join(names) + "\tword\tbest\tquery")
        for i, (name, kind, query, e, label, best) in enumerate(rows):
            v = x[i]
            print(
                f"{name}\t{kind}\t{label}\t{1 / (1 + math.exp(-z[i])):.2f}\t"
                + "\t".join(f"{f:.2f}" for f in v)
                + f"\t{e.missing_word}\t{best}\t{query}"
            )


if __name__ == "__main__":
    main()
