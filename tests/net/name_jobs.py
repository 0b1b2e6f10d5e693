"""Entry functions of the operation-name tests (workers import them from here)."""

from __future__ import annotations

from typing import Any

from twister2 import WorkerEnv
from twister2.net.batch import AllReduce, Gather, KeyedReduce, Reduce
from twister2.net.plan import Plan


def extra_operation_on_worker_0(env: WorkerEnv) -> Any:
    """Worker 0 creates a gather the others do not: its data must not go to their reduce."""
    flow, n = env.dataflow, env.num_workers
    if env.worker_id == 0:
        Gather(flow, Plan.per_worker(n), target=0)
    op = Reduce(flow, Plan.per_worker(n), "sum", target=0)
    op.send_all(env.worker_id, [env.worker_id], finish=True).wait()
    return op.result() if env.worker_id == 0 else None


def same_name_other_plan(env: WorkerEnv) -> Any:
    """Operation 'x' is planned with one more target on the last worker."""
    flow, n = env.dataflow, env.num_workers
    extra = 1 if env.worker_id == n - 1 else 0
    with flow.named("x"):
        op = AllReduce(flow, Plan.spread(n, n + extra, n), "sum")
    return op.send_all(env.worker_id, [1], finish=True).wait().result()


def last_worker_skips(env: WorkerEnv) -> Any:
    """Every worker but the last creates the allreduce 'late'; the last one just returns."""
    flow, n = env.dataflow, env.num_workers
    if env.worker_id == n - 1:
        return None
    with flow.named("late"):
        op = AllReduce(flow, Plan.per_worker(n), "sum")
    return op.send_all(env.worker_id, [1], finish=True).wait().result()


def one_name_every_iteration(env: WorkerEnv) -> list[Any]:
    """An allreduce and a keyed reduce under the same names each iteration; workers run ahead
    of each other (the last one sleeps), so iterations' messages overlap."""
    flow, rank, n = env.dataflow, env.worker_id, env.num_workers
    plan = Plan.per_worker(n)
    out = []
    for i in range(20):
        if rank == n - 1 and i % 5 == 0:
            import time

            time.sleep(0.05)
        with flow.named("total"):
            total = AllReduce(flow, plan, "sum")
        total.send_all(rank, [i * 100 + rank], finish=True)
        with flow.named("counts"):
            counts = KeyedReduce(flow, plan, "sum")
        counts.send_all(rank, [(k % 3, i) for k in range(rank + 1)], finish=True)
        total.wait()
        counts.wait()
        out.append((total.result(), sorted(counts.result(rank).items())))
    return out
