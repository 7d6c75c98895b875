#!/usr/bin/env python3
"""CPU time of ``SearchEngine.ask`` per query (thread CPU time, not wall time), for a
machine shared with other work where wall-clock latencies mostly measure the scheduler.

Run: ``.venv/bin/python bench/faq_cpu_latency.py [--size 1000] [--app-dir DIR]``; with
``--app-dir`` (a ``git archive`` export) it measures that checkout's engine instead, e.g.
the code before a change, in the same session. Same knowledge bases and query pool as
``faq_bench.py`` (its seeded generator), three passes after a warm-up.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import sys, time
sys.path[:0] = [{root!r}, {root!r} + "/bench"]
from faq_bench import build_entries, build_query_pool
from faq import SearchEngine
engine = SearchEngine(build_entries({size}))
pool = [q["q"] for q in build_query_pool()]
for q in pool:
    engine.ask(q)
samples = []
for _ in range(3):
    for q in pool:
        started = time.thread_time_ns()
        engine.ask(q)
        samples.append(time.thread_time_ns() - started)
samples.sort()
pick = lambda share: samples[min(len(samples) - 1, int(share * len(samples)))] / 1e6
cells = " | ".join(f"{{pick(share):.3f}} ms" for share in (0.5, 0.95, 0.99))
print(f"| {{len(samples)}} | {{cells}} |")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="entries in the knowledge base")
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="another checkout")
    args = parser.parse_args()
    root = str(args.app_dir.resolve())
    code = CHILD.format(root=root, size=args.size)
    print(f"{root}, {args.size} entries: ask() CPU time per query\n")
    print("| queries | p50 | p95 | p99 |\n|---:|---:|---:|---:|")
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


if __name__ == "__main__":
    main()
