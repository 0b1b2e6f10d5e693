"""Performance sanity of the array tier (prints, asserts nothing): a keyed partition of 10M rows
of two int64 columns over 2 workers, on threads over the inproc channel and in real 2-worker jobs.

Run ``python -m tests.net.batch.array_perf [--rows N] [--channels tcp,mpi]``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pyarrow as pa

import twister2
from tests.net.spmd_threads import run_spmd
from twister2 import WorkerEnv
from twister2.net import Dataflow, Plan
from twister2.net.batch import ArrayPartition, KeyedPartition
from twister2.net.inproc import InprocChannel

CHUNK = 1_000_000


def _source_table(rank: int, rows: int) -> pa.Table:
    rng = np.random.default_rng(rank)
    keys = rng.integers(0, 2**62, rows, dtype=np.int64)
    return pa.table({"k": keys, "v": np.arange(rows, dtype=np.int64)})


def partition_rows(flow: Dataflow, rows_per_worker: int) -> tuple[float, int]:
    """One worker's part: send its rows in 1M-row tables, wait; (seconds, rows received)."""
    table = _source_table(flow.rank, rows_per_worker)
    plan = Plan.per_worker(flow.size)
    start = time.perf_counter()
    op = ArrayPartition(flow, plan, key="k")
    for offset in range(0, rows_per_worker, CHUNK):
        op.send(flow.rank, table.slice(offset, CHUNK))
    op.finish(flow.rank)
    op.wait(timeout=600)
    received = op.result(flow.rank).num_rows
    elapsed = time.perf_counter() - start
    op.close()
    return elapsed, received


def partition_job(env: WorkerEnv) -> tuple[float, int]:
    rows = int(env.args[0])
    env.barrier("start")
    return partition_rows(env.dataflow, rows // env.num_workers)


def object_tier_rows(flow: Dataflow, rows_per_worker: int) -> tuple[float, int]:
    """The same with the object tier's keyed partition of ``(key, value)`` tuples."""
    table = _source_table(flow.rank, rows_per_worker)
    pairs = list(zip(table.column("k").to_pylist(), table.column("v").to_pylist(), strict=True))
    plan = Plan.per_worker(flow.size)
    start = time.perf_counter()
    op = KeyedPartition(flow, plan)
    for pair in pairs:
        op.send(flow.rank, pair)
    op.finish(flow.rank)
    op.wait(timeout=600)
    received = sum(1 for _ in op.result(flow.rank))
    elapsed = time.perf_counter() - start
    op.close()
    return elapsed, received


def on_threads(body: Any, rows: int, workers: int = 2) -> float:
    channels = InprocChannel.group(workers)
    flows = [Dataflow(ch) for ch in channels]
    try:
        parts = run_spmd(lambda r: body(flows[r], rows // workers), workers, timeout=900)
    finally:
        for flow in flows:
            flow.close()
        for ch in channels:
            ch.close()
    assert sum(n for _, n in parts) == rows
    return rows / max(t for t, _ in parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--object-rows", type=int, default=1_000_000)
    parser.add_argument("--channels", default="tcp")
    opts = parser.parse_args()
    print(f"array partition of {opts.rows:,} rows (k, v: int64) over 2 workers")
    print(f"  inproc, threads: {on_threads(partition_rows, opts.rows):14,.0f} rows/s")
    for channel in opts.channels.split(","):
        cluster = "mpi" if channel == "mpi" else "local"
        result = twister2.run(
            partition_job,
            workers=2,
            cluster=cluster,
            config={"network.channel": channel},
            args=[str(opts.rows)],
        )
        parts = result.values
        assert sum(n for _, n in parts) == opts.rows
        rate = opts.rows / max(t for t, _ in parts)
        print(f"  {channel}, 2 processes: {rate:14,.0f} rows/s")
    if opts.object_rows:
        rate = on_threads(object_tier_rows, opts.object_rows)
        print(f"object-tier keyed partition of {opts.object_rows:,} (k, v) tuples, inproc")
        print(f"  inproc, threads: {rate:14,.0f} rows/s")


if __name__ == "__main__":
    main()
