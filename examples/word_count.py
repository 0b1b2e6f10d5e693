"""Word count over a text file on the embedded local cluster.

Each worker counts the words of its share of the file's lines (the text splits of
``twister2.io``: byte ranges cut at line starts, so every line is read once), sends each
word's count to the worker that owns the word (a stable hash of the word picks it), owners
add up what they receive, and worker 0 gathers the totals, checks them against a
single-process count and prints the most frequent words.

    python examples/word_count.py examples/data/sample.txt
    twister2 submit local examples/word_count.py --workers 3 -- examples/data/sample.txt
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import twister2
from twister2 import WorkerEnv
from twister2.io import assign_splits, plan_splits, read_split

WORD = re.compile(r"[a-z0-9']+")
TAG_COUNTS = 1
TAG_TOTALS = 2


def count_words(lines: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in lines:
        counts.update(WORD.findall(line.lower()))
    return counts


def read_share(path: str, worker: int, workers: int, config: Mapping[str, Any]) -> list[str]:
    """This worker's lines: its text splits of the file (planned alike on every worker)."""
    splits = plan_splits(path, workers, format="text", config=config)
    mine = assign_splits(splits, workers)[worker]
    return [line for split in mine for line in read_split(split, config)]


def owner(word: str, workers: int) -> int:
    return zlib.crc32(word.encode()) % workers


def main(env: WorkerEnv) -> dict[str, int] | None:
    parser = argparse.ArgumentParser(prog="word_count.py")
    parser.add_argument(
        "path", nargs="?", default=os.path.join(os.path.dirname(__file__), "data", "sample.txt")
    )
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(env.args)
    n, me = env.num_workers, env.worker_id

    local = count_words(read_share(args.path, me, n, env.config))
    shares: list[dict[str, int]] = [{} for _ in range(n)]
    for word, count in local.items():
        shares[owner(word, n)][word] = count
    for dest in range(n):
        env.comm.send(shares[dest], dest=dest, tag=TAG_COUNTS)
    mine: Counter[str] = Counter()
    for _ in range(n):
        mine.update(env.comm.recv(tag=TAG_COUNTS))
    env.comm.send(dict(mine), dest=0, tag=TAG_TOTALS)
    if me != 0:
        return None

    totals: Counter[str] = Counter()
    for _ in range(n):
        totals.update(env.comm.recv(tag=TAG_TOTALS))
    with open(args.path, encoding="utf-8") as f:
        reference = count_words(f)
    if totals != reference:
        raise AssertionError(
            f"distributed word count differs from the reference: "
            f"{len(totals)} words vs {len(reference)}"
        )
    print(f"{sum(totals.values())} words, {len(totals)} distinct, counted by {n} workers:")
    for word, count in totals.most_common(args.top):
        print(f"{count:8d}  {word}")
    return dict(totals)


if __name__ == "__main__":
    result = twister2.run(main, workers=4)
    sys.exit(0 if result.values[0] else 1)
