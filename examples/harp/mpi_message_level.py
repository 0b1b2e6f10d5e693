"""MPI at message level: raw mpi4py calls and Twister2's operators in one program.

On the mpi cluster, ``env.mpi_comm`` is the job's mpi4py communicator (``MPI.COMM_WORLD``: the
workers are its ranks). This example mixes, in one job:

1. a raw object ``comm.allreduce`` of the ranks;
2. a raw buffer ring: every rank ``Send`` s a NumPy array to its right neighbour and ``Recv`` s
   its left neighbour's;
3. a Twister2:Net ``AllReduce`` operator and a Harp ``allreduce`` of a table;
4. a raw ``comm.Allreduce`` of the same arrays, which must equal Harp's result.

It needs the mpi cluster: anywhere else it says so and exits with status 2.

    python examples/harp/mpi_message_level.py              # 2 ranks on the mpi cluster
    twister2 submit mpi examples/harp/mpi_message_level.py --workers 4
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

import twister2
from twister2 import WorkerEnv
from twister2.harp import Harp, Table
from twister2.net import Plan
from twister2.net.batch import AllReduce

SIZE = 1000


def main(env: WorkerEnv) -> dict[str, Any]:
    try:
        comm = env.mpi_comm
    except RuntimeError as exc:  # not the mpi cluster
        return {"error": str(exc)}
    rank, size = comm.Get_rank(), comm.Get_size()
    if (rank, size) != (env.worker_id, env.num_workers):
        msg = f"MPI rank {rank} of {size} is worker {env.worker_id} of {env.num_workers}"
        raise AssertionError(msg)

    total = comm.allreduce(rank + 1)  # 1. raw object collective
    if total != size * (size + 1) // 2:
        msg = f"comm.allreduce gave {total}"
        raise AssertionError(msg)

    mine = np.full(SIZE, rank, dtype=np.int64)  # 2. raw buffer ring
    left = np.empty(SIZE, dtype=np.int64)
    request = comm.Isend(mine, dest=(rank + 1) % size, tag=7)
    comm.Recv(left, source=(rank - 1) % size, tag=7)
    request.Wait()
    if not (left == (rank - 1) % size).all():
        msg = f"rank {rank} received {left[:3]}... from its left neighbour"
        raise AssertionError(msg)

    op = AllReduce(env.dataflow, Plan.per_worker(size), "max")  # 3. Twister2 operators
    op.send(rank, rank)
    op.finish(rank)
    if op.wait().result() != size - 1:
        msg = f"the AllReduce operator gave {op.result()}"
        raise AssertionError(msg)
    harp = Harp.from_env(env, context="mpi-example")
    arrays = {pid: np.arange(SIZE, dtype=np.float64) * (rank + pid) for pid in range(4)}
    reduced = harp.allreduce(Table("sum", arrays), operation="arrays")

    for pid, data in arrays.items():  # 4. raw buffer collective on the same data
        out = np.empty_like(data)
        comm.Allreduce(data, out)
        if not np.array_equal(out, reduced[pid]):
            msg = f"partition {pid}: Harp's allreduce differs from MPI's Allreduce"
            raise AssertionError(msg)
    comm.Barrier()
    return {"ok": True, "sum": total}


if __name__ == "__main__":
    result = twister2.run(main, workers=2, cluster="mpi")
    errors = [v["error"] for v in result.values if "error" in v]
    if errors:
        print(f"mpi_message_level.py: {errors[0]}", file=sys.stderr)
        sys.exit(2)
    n = len(result.values)
    print(
        f"mpi message level: {n} ranks mixed comm.allreduce, Send/Recv and Allreduce with "
        "Twister2's AllReduce and Harp's allreduce: all results agree"
    )
