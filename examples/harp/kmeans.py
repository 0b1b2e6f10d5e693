"""Harp K-Means: the centroids are a table, one partition per centre, allreduced every iteration.

Every worker generates the same points from a fixed seed (Gaussian blobs) and keeps its share.
Each iteration it assigns its points to the nearest centre and puts, for every centre, the sum
of its points and their count into partition ``centre id`` of a table; ``allreduce`` sums the
tables over the workers, and every worker divides to get the new centres (a centre with no
points stays where it was). At the end, worker 0 runs the same K-Means in one process, from the
same initial centres (the first k points), and the centres must match within 1e-9.

    python examples/harp/kmeans.py                            # 4 workers on the local cluster
    twister2 submit local examples/harp/kmeans.py --workers 3
    twister2 submit mpi examples/harp/kmeans.py --workers 4 -- --points 200000 --dim 16 --k 16
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

# One BLAS thread per worker: the workers already share the cores, and BLAS threads that spin
# on a busy core slow the distance and sum products down tenfold. (Set before NumPy loads; the
# workers inherit it.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import twister2
from twister2.harp import HarpWorker, Table


def parse(args: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kmeans.py", description="Harp K-Means (allreduce).")
    p.add_argument("--points", type=int, default=20_000, help="points in all (20000)")
    p.add_argument("--dim", type=int, default=8, help="dimensions (8)")
    p.add_argument("--k", type=int, default=8, help="centres (8)")
    p.add_argument("--iterations", type=int, default=10, help="iterations (10)")
    p.add_argument("--seed", type=int, default=2018, help="seed of the generated data (2018)")
    p.add_argument("--corrupt", action="store_true", help=argparse.SUPPRESS)  # tests the check
    return p.parse_args(args)


def generate(opts: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """All the points (Gaussian blobs around random true centres) and the initial centres."""
    rng = np.random.default_rng(opts.seed)
    true_centres = rng.uniform(-10, 10, size=(opts.k, opts.dim))
    labels = rng.integers(0, opts.k, size=opts.points)
    points = true_centres[labels] + rng.standard_normal((opts.points, opts.dim))
    return points, points[: opts.k].copy()


def partial_sums(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every centre: the sum of the points nearest to it, and how many there are."""
    k = len(centres)
    distances = (
        np.einsum("ij,ij->i", points, points)[:, None]
        - 2 * points @ centres.T
        + np.einsum("ij,ij->i", centres, centres)[None, :]
    )
    nearest = distances.argmin(axis=1)
    one_hot = np.zeros((len(points), k))
    one_hot[np.arange(len(points)), nearest] = 1.0
    return one_hot.T @ points, one_hot.sum(axis=0)


def new_centres(sums: np.ndarray, counts: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Sums divided by counts; a centre without points keeps its place."""
    out = old.copy()
    filled = counts > 0
    out[filled] = sums[filled] / counts[filled, None]
    return out


def single_process(points: np.ndarray, initial: np.ndarray, iterations: int) -> np.ndarray:
    """The reference: the same K-Means over all the points in one process."""
    centres = initial.copy()
    for _ in range(iterations):
        sums, counts = partial_sums(points, centres)
        centres = new_centres(sums, counts, centres)
    return centres


class KMeansWorker(HarpWorker):
    """One worker: its share of the points; the centroid table is allreduced every iteration."""

    def map_collective(self) -> dict[str, Any]:
        opts = parse(self.env.args)
        points, initial = generate(opts)
        mine = np.array_split(points, self.num_workers)[self.worker_id]
        centres = initial.copy()
        start = time.perf_counter()
        for iteration in range(opts.iterations):
            sums, counts = partial_sums(mine, centres)
            table = Table("sum", {c: np.append(sums[c], counts[c]) for c in range(opts.k)})
            total = self.allreduce(table, context="kmeans", operation=f"iteration-{iteration}")
            rows = np.stack([total[c] for c in range(opts.k)])
            centres = new_centres(rows[:, :-1], rows[:, -1], centres)
        seconds = time.perf_counter() - start
        if opts.corrupt and self.is_master:
            centres[0, 0] += 1.0
        if self.is_master:
            want = single_process(points, initial, opts.iterations)
            if not np.allclose(centres, want, rtol=1e-9, atol=1e-9):
                worst = float(np.abs(centres - want).max())
                msg = f"the centres differ from the single-process K-Means by up to {worst:.3g}"
                raise AssertionError(msg)
        return {"centres": centres, "seconds": seconds, "points": len(mine)}


if __name__ == "__main__":
    opts = parse(sys.argv[1:])  # usage errors here, before the job starts
    result = twister2.run(KMeansWorker.main, workers=4)
    first = result.values[0]
    same = all(np.array_equal(v["centres"], first["centres"]) for v in result.values)
    if not same:
        print("kmeans: the workers ended with different centres", file=sys.stderr)
        sys.exit(1)
    seconds = max(v["seconds"] for v in result.values)
    print(
        f"kmeans: {len(result.values)} worker(s), {opts.points} points of {opts.dim} dimensions, "
        f"{opts.k} centres, {opts.iterations} iterations in {seconds:.3f} s: "
        "centres match the single-process K-Means"
    )
