"""Read throughput of a text file split over N readers into Arrow batches.

A generated ASCII text file (words, about 45 bytes a line) is read, once it is in the page
cache, by:

* ``open().read()``: one process reads the whole file into one ``bytes`` (the limit);
* ``open().readinto()`` of 1 MiB blocks into one buffer: the read alone, without the cost of
  allocating memory for the whole file;
* ``pyarrow.csv.read_csv``: pyarrow's multi-threaded reader makes a one-column table;
* twister2, 1 reader: ``plan_splits(path, 1)`` and ``read_batches`` in one process;
* twister2, N readers: the workers of a local job (``twister2.run``), each planning the splits
  and reading its share into Arrow batches (``read_batches``); its time runs from a barrier to
  the slowest worker's last batch.

All of it runs inside one job, in interleaved rounds: worker 0 times each single-process
reader alone while the other workers wait at a barrier, then all workers read. So each round
measures everything under the same machine load; the table shows the best of the rounds, and
the per-round ratios show the spread. Every reader's line count is checked.

    python benchmarks/io_read.py                  # 1 GiB, 2 readers, 5 rounds
    python benchmarks/io_read.py --quick          # 50 MiB
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from table import add_report_options, emit, markdown_table, ratio

import twister2
from twister2.io import assign_splits, plan_splits, read_batches

TARGET = 0.8
"""The N-reader throughput should be at least this fraction of ``open().read()``'s."""

VOCABULARY = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega data flow batch stream task graph worker"
)


def make_file(path: Path, size: int) -> int:
    """Write about ``size`` bytes of text lines to ``path``; return its line count."""
    rng = np.random.default_rng(7)
    chunks = []
    for _ in range(8):
        counts = rng.integers(4, 14, size=20_000)
        words = rng.choice(np.array(VOCABULARY.split()), size=int(counts.sum()))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        lines = [" ".join(words[a:b]) for a, b in itertools.pairwise(bounds)]
        chunks.append(("\n".join(lines) + "\n").encode())
    written = lines_total = 0
    with open(path, "wb") as f:
        i = 0
        while written < size:
            chunk = chunks[i % len(chunks)]
            f.write(chunk)
            written += len(chunk)
            lines_total += chunk.count(b"\n")
            i += 1
    return lines_total


def plain_read(path: Path) -> int:
    with open(path, "rb") as f:
        data = f.read()
    return data.count(b"\n")


def block_read(path: Path) -> int:
    """The file read into one reused 1 MiB buffer: the read alone, no allocation."""
    buffer = bytearray(1 << 20)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while count := f.readinto(buffer):
            total += count
    return total


def arrow_csv(path: Path) -> int:
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=["line"], block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False),
    )
    return int(table.num_rows)


def read_in_process(path: Path) -> int:
    rows = 0
    for split in plan_splits(str(path), 1, format="text"):
        for batch in read_batches(split):
            rows += batch.num_rows
    return rows


BASELINES = {
    "plain": plain_read,
    "block": block_read,
    "csv": arrow_csv,
    "one": read_in_process,
}


def read_job(env: twister2.WorkerEnv) -> list[dict[str, tuple[float, int]]]:
    """Rounds of: worker 0 times each baseline alone (the others wait at a barrier), then
    every worker reads its share into Arrow batches. Interleaving puts each round's
    measurements under the same machine load."""
    path, rounds = Path(env.args[0]), int(env.args[1])
    out = []
    for round_ in range(rounds):
        times: dict[str, tuple[float, int]] = {}
        env.barrier(f"baselines-{round_}")
        if env.worker_id == 0:
            for name, fn in BASELINES.items():
                start = time.perf_counter()
                count = fn(path)
                times[name] = (time.perf_counter() - start, count)
        env.barrier(f"read-{round_}")
        start = time.perf_counter()
        splits = plan_splits(str(path), env.num_workers, format="text", config=env.config)
        rows = 0
        for split in assign_splits(splits, env.num_workers)[env.worker_id]:
            for batch in read_batches(split, env.config):
                rows += batch.num_rows
        times["job"] = (time.perf_counter() - start, rows)
        out.append(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_options(parser)
    parser.add_argument("--size-mb", type=int, help="file size in MiB (default 1024; quick 50)")
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where to write the file (default: temp)")
    args = parser.parse_args()
    size_mb = args.size_mb or (50 if args.quick else 1024)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "lines.txt"
        lines = make_file(path, size_mb << 20)
        size = os.path.getsize(path)
        plain_read(path)  # the page cache now holds the file
        start = time.perf_counter()
        result = twister2.run(read_job, workers=args.readers, args=[str(path), str(args.rounds)])
        t_wall = time.perf_counter() - start
    mb = size / 1e6
    rounds = list(zip(*result.values, strict=True))  # per round: each worker's times
    expected = {"plain": lines, "block": size, "csv": lines, "one": lines, "job": lines}
    seconds: dict[str, list[float]] = {name: [] for name in expected}
    for workers in rounds:
        for name in BASELINES:
            elapsed, count = workers[0][name]
            seconds[name].append(elapsed)
            if count != expected[name]:
                raise RuntimeError(f"{name} read {count}, the file has {expected[name]}")
        seconds["job"].append(max(w["job"][0] for w in workers))  # the slowest reader
        if sum(w["job"][1] for w in workers) != lines:
            raise RuntimeError(f"the {args.readers} readers did not read {lines} lines")
    best_of = {name: min(values) for name, values in seconds.items()}
    t_plain = best_of["plain"]

    def row(name: str, key: str) -> list[str]:
        return [
            name,
            f"{best_of[key]:.3f}",
            f"{mb / best_of[key]:.0f}",
            ratio(t_plain, best_of[key]),
        ]

    rows = [
        row("`open().read()`, 1 process (the limit)", "plain"),
        row("`open().readinto()`, 1 MiB blocks, 1 process", "block"),
        row("`pyarrow.csv.read_csv`, its threads", "csv"),
        row("twister2.io, 1 reader, 1 process", "one"),
        row(f"twister2.io, {args.readers} readers (workers of a local job)", "job"),
    ]
    per_round = sorted(p / j for p, j in zip(seconds["plain"], seconds["job"], strict=True))
    median = per_round[len(per_round) // 2]
    target = "yes" if median >= TARGET else "no"
    report = "\n".join(
        [
            f"Text read into Arrow batches: {size / 2**20:.0f} MiB, {lines} lines; "
            f"{os.cpu_count()} CPUs (load average {load:.1f} at the start); "
            f"pyarrow {pa.__version__}; best of {args.rounds} interleaved rounds",
            "",
            markdown_table(["reader", "seconds", "MB/s", "throughput vs open().read()"], rows),
            "",
            f"{args.readers} readers vs open().read(), per round: "
            + ", ".join(f"{r:.2f}x" for r in per_round)
            + f" (median {median:.2f}x); at least {TARGET}x: {target}. "
            f"Job wall time, start-up and {args.rounds} rounds included: {t_wall:.1f} s.",
        ]
    )
    emit(report, args.out)


if __name__ == "__main__":
    main()
