"""Harp matrix factorisation with model rotation: alternating least squares over ``rotate``.

A ratings matrix R (users x items, some entries observed) is factorised as W H^T with
regularisation ``lam``. Users (rows of W) are split over the workers and stay put; the item
factors H are cut into one block per worker, a table partition each, and *rotate* around the
ring of workers, as in Harp's model-rotation examples:

- W step: as the H blocks pass by, every worker adds their terms to its users' normal equations
  (``sum h h^T`` and ``sum r h``); after a full turn the blocks are home and it solves for W.
- H step: the blocks rotate again, now carrying their items' normal equations, and every worker
  adds its users' terms to the block in hand; after a full turn each block has every user's
  terms and its owner solves for H.
- The objective (squared error plus regularisation) comes from an ``allgather`` of H and an
  ``allreduce`` of every worker's share.

Each worker checks that the objective never increases, and that its part of W, all of H and the
objectives match the same ALS run in one process (within 1e-8); a mismatch fails the job.

    python examples/harp/mf_rotate.py                      # 4 workers on the local cluster
    twister2 submit local examples/harp/mf_rotate.py --workers 3
    twister2 submit mpi examples/harp/mf_rotate.py --workers 2 -- --users 400 --epochs 8
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

import twister2
from twister2 import WorkerEnv
from twister2.harp import Harp, Table


def parse(args: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mf_rotate.py", description="Harp ALS with rotate.")
    p.add_argument("--users", type=int, default=200, help="rows of the ratings matrix (200)")
    p.add_argument("--items", type=int, default=120, help="columns (120)")
    p.add_argument("--rank", type=int, default=4, help="latent factors (4)")
    p.add_argument("--density", type=float, default=0.3, help="observed share of ratings (0.3)")
    p.add_argument("--lam", type=float, default=0.1, help="regularisation (0.1)")
    p.add_argument("--epochs", type=int, default=5, help="ALS epochs (5)")
    p.add_argument("--seed", type=int, default=2018, help="seed of the generated data (2018)")
    p.add_argument("--corrupt", action="store_true", help=argparse.SUPPRESS)  # tests the check
    return p.parse_args(args)


def generate(opts: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratings of a noisy low-rank model, which of them are observed, and the initial H."""
    rng = np.random.default_rng(opts.seed)
    users = rng.standard_normal((opts.users, opts.rank))
    items = rng.standard_normal((opts.items, opts.rank))
    ratings = users @ items.T + 0.1 * rng.standard_normal((opts.users, opts.items))
    observed = (rng.random((opts.users, opts.items)) < opts.density).astype(float)
    h0 = 0.1 * rng.standard_normal((opts.items, opts.rank))
    return ratings * observed, observed, h0


def add_terms(
    a: np.ndarray, c: np.ndarray, mask: np.ndarray, ratings: np.ndarray, factors: np.ndarray
) -> None:
    """Add ``sum_j mask_ij f_j f_j^T`` to ``a[i]`` and ``sum_j r_ij f_j`` to ``c[i]``."""
    a += np.einsum("ij,jk,jl->ikl", mask, factors, factors)
    c += ratings @ factors


def solve(a: np.ndarray, c: np.ndarray, lam: float) -> np.ndarray:
    """Every row's regularised normal equations ``(a_i + lam I) x_i = c_i``."""
    eye = lam * np.eye(a.shape[-1])
    return np.linalg.solve(a + eye, c[..., None])[..., 0]


def objective(
    ratings: np.ndarray, mask: np.ndarray, w: np.ndarray, h: np.ndarray, lam: float
) -> float:
    """Squared error over the observed ratings plus ``lam`` times the factors' squared norms."""
    error = mask * (ratings - w @ h.T)
    return float((error**2).sum() + lam * ((w**2).sum() + (h**2).sum()))


def single_process(opts: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The reference: the same ALS over the whole matrix in one process."""
    ratings, mask, h = generate(opts)
    w = np.zeros((opts.users, opts.rank))
    losses = []
    for _ in range(opts.epochs):
        a, c = np.zeros((opts.users, opts.rank, opts.rank)), np.zeros((opts.users, opts.rank))
        add_terms(a, c, mask, ratings, h)
        w = solve(a, c, opts.lam)
        a, c = np.zeros((opts.items, opts.rank, opts.rank)), np.zeros((opts.items, opts.rank))
        add_terms(a, c, mask.T, ratings.T, w)
        h = solve(a, c, opts.lam)
        losses.append(objective(ratings, mask, w, h, opts.lam))
    return w, h, losses


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = parse(env.args)
    harp = Harp.from_env(env, context="mf")
    n, me = env.num_workers, env.worker_id
    ratings, mask, h0 = generate(opts)
    users = np.array_split(np.arange(opts.users), n)[me]
    blocks = np.array_split(np.arange(opts.items), n)
    my_ratings, my_mask = ratings[users], mask[users]
    r = opts.rank
    # this worker's H block, a partition: its item ids and their factors
    model = Table("replace", {me: {"items": blocks[me], "h": h0[blocks[me]]}})
    w = np.zeros((len(users), r))
    losses = []
    for epoch in range(opts.epochs):
        a, c = np.zeros((len(users), r, r)), np.zeros((len(users), r))
        for step in range(n):  # W step: the H blocks go once round the ring
            for block in model:
                items = block.data["items"]
                add_terms(a, c, my_mask[:, items], my_ratings[:, items], block.data["h"])
            model = harp.rotate(model, operation=f"epoch-{epoch}-w-{step}")
        w = solve(a, c, opts.lam)
        for block in model:  # H step: the blocks carry their items' normal equations round
            k = len(block.data["items"])
            block.data["a"], block.data["c"] = np.zeros((k, r, r)), np.zeros((k, r))
        for step in range(n):
            for block in model:
                items = block.data["items"]
                add_terms(
                    block.data["a"], block.data["c"], my_mask[:, items].T, my_ratings[:, items].T, w
                )
            model = harp.rotate(model, operation=f"epoch-{epoch}-h-{step}")
        model = Table(
            "replace",
            {
                b.id: {"items": b.data["items"], "h": solve(b.data["a"], b.data["c"], opts.lam)}
                for b in model
            },
        )
        everything = harp.allgather(model, operation=f"epoch-{epoch}-h")
        h = np.concatenate([everything[b]["h"] for b in range(n)])
        mine = objective(my_ratings, my_mask, w, h, 0.0) + opts.lam * float((w**2).sum())
        total = harp.allreduce(Table("sum", {0: np.array([mine])}), operation=f"epoch-{epoch}")
        losses.append(float(total[0][0]) + opts.lam * float((h**2).sum()))
    if opts.corrupt and me == 0:
        w = w * 1.001
    check(opts, users, w, h, losses)
    return {"losses": losses}


def check(
    opts: argparse.Namespace, users: np.ndarray, w: np.ndarray, h: np.ndarray, losses: list[float]
) -> None:
    """The objective never rises, and the model is the single-process one."""
    rises = [i for i in range(1, len(losses)) if losses[i] > losses[i - 1] * (1 + 1e-12)]
    if rises:
        msg = f"the objective rose at epochs {rises}: {losses}"
        raise AssertionError(msg)
    w_ref, h_ref, losses_ref = single_process(opts)
    for name, got, want in [
        ("W", w, w_ref[users]),
        ("H", h, h_ref),
        ("objective", np.array(losses), np.array(losses_ref)),
    ]:
        if not np.allclose(got, want, rtol=1e-8, atol=1e-10):
            worst = float(np.abs(got - want).max())
            msg = f"{name} differs from the single-process ALS by up to {worst:.3g}"
            raise AssertionError(msg)


if __name__ == "__main__":
    opts = parse(sys.argv[1:])
    result = twister2.run(main, workers=4)
    losses = result.values[0]["losses"]
    if any(v["losses"] != losses for v in result.values):
        print("mf_rotate: the workers computed different objectives", file=sys.stderr)
        sys.exit(1)
    print(
        f"mf_rotate: {len(result.values)} worker(s), {opts.users}x{opts.items} ratings, rank "
        f"{opts.rank}, {opts.epochs} epochs: objective {losses[0]:.4f} -> {losses[-1]:.4f}, "
        "decreasing and equal to the single-process ALS"
    )
