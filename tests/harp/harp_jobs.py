"""Entry functions of the real-process Harp tests (workers import them from here)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.harp.cases import make_inputs, run_collectives
from twister2 import WorkerEnv
from twister2.harp import Harp, Table
from twister2.net import Plan
from twister2.net.batch import AllReduce


def all_collectives(env: WorkerEnv) -> dict[str, Any]:
    """Every collective on the tables of ``make_inputs(seed, workers, combiner)`` (the job's
    arguments), then the MPI part: raw mpi4py mixed with Twister2 (the mpi cluster), or the
    error ``env.mpi_comm`` gives elsewhere."""
    seed, combiner_name = int(env.args[0]), env.args[1]
    inputs = make_inputs(seed, env.num_workers, combiner_name=combiner_name)
    harp = Harp.from_env(env, timeout=60.0)
    out = run_collectives(harp, inputs)
    if env.cluster == "mpi":
        out["mpi"] = mixed_with_mpi(env, harp)
    else:
        try:
            env.mpi_comm  # noqa: B018
        except RuntimeError as exc:
            out["mpi_comm_error"] = str(exc)
    return out


def mixed_with_mpi(env: WorkerEnv, harp: Harp) -> dict[str, Any]:
    """Raw ``comm.allreduce``, ``Send``/``Recv`` and ``Allreduce`` between Twister2 operators."""
    comm = env.mpi_comm
    rank, size = comm.Get_rank(), comm.Get_size()
    ranks = comm.allreduce([rank])
    op = AllReduce(env.dataflow, Plan.per_worker(size), "sum")
    op.send(env.worker_id, np.full(3, env.worker_id))
    op.finish(env.worker_id)
    operator_sum = op.wait().result().tolist()
    out, back = np.full(5, rank, dtype=np.int64), np.empty(5, dtype=np.int64)
    request = comm.Isend(out, dest=(rank + 1) % size, tag=3)
    comm.Recv(back, source=(rank - 1) % size, tag=3)
    request.Wait()
    data = np.arange(6, dtype=np.float64) * (rank + 1)
    harp_sum = harp.allreduce(Table("sum", {0: data}), operation="beside-mpi")[0]
    mpi_sum = np.empty_like(data)
    comm.Allreduce(data, mpi_sum)
    comm.Barrier()
    return {
        "rank": rank,
        "size": size,
        "ranks": ranks,
        "operator_sum": operator_sum,
        "from_left": back.tolist(),
        "harp_equals_mpi": bool(np.array_equal(harp_sum, mpi_sum)),
    }


# -- bad input: each runs on 2 workers and must fail the job -------------------------------------
def skip_collective(env: WorkerEnv) -> None:
    """Worker 1 never calls the allreduce (it waits at the job's end barrier instead)."""
    if env.worker_id == 1:
        return
    Harp.from_env(env, timeout=3.0).allreduce(Table("sum", {0: 1.0}), operation="step")


def different_operations(env: WorkerEnv) -> None:
    """The workers call the allreduce under different operation names."""
    harp = Harp.from_env(env, timeout=2.0)
    harp.allreduce(Table("sum", {0: 1.0}), operation=f"step-{env.worker_id}")


def mismatched_shapes(env: WorkerEnv) -> None:
    """Partition 1 has 3 elements on worker 0 and 4 on worker 1."""
    table = Table("sum", {1: np.zeros(3 + env.worker_id)})
    Harp.from_env(env, timeout=60.0).allreduce(table, operation="shapes")


def past_the_last_worker(env: WorkerEnv) -> None:
    """A partitioner that puts partition 5 on worker 2 of 2."""
    table = Table("sum", {5: 1.0})
    Harp.from_env(env, timeout=60.0).regroup(table, to_worker_two, operation="moving")


def to_worker_two(pid: int, workers: int) -> int:
    return 2
