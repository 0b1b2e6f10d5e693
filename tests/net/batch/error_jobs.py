"""Entry functions of the bad-input jobs in ``test_batch_errors.py`` (workers import them here).

Each runs on 2 workers and goes wrong on worker 0 only; the job must fail naming the operator,
the worker and the offending value's type.
"""

from __future__ import annotations

from typing import Any

from twister2 import WorkerEnv
from twister2.net import Plan
from twister2.net.batch import Join, Partition, Reduce


def to_last_target(value: Any, targets: int) -> int:
    return targets - 1


def failing_add(a: Any, b: Any) -> Any:
    msg = "this reduce function always fails"
    raise ArithmeticError(msg)


def unpicklable_partition(env: WorkerEnv) -> None:
    """Source 0 (worker 0) sends a lambda to the last target (worker 1)."""
    plan = Plan.spread(2, 2, env.num_workers)
    op = Partition(env.dataflow, plan, partitioner=to_last_target)
    for source in plan.local_sources(env.worker_id):
        value = (lambda: None) if source == 0 else source
        op.send_all(source, [value], finish=True)
    op.wait(timeout=60)


def raising_reduce(env: WorkerEnv) -> None:
    """The reduce function raises where worker 1's partial result meets worker 0's."""
    plan = Plan.spread(2, 1, env.num_workers)
    op = Reduce(env.dataflow, plan, failing_add)
    for source in plan.local_sources(env.worker_id):
        op.send(source, 1.5)
        op.finish(source)
    op.wait(timeout=60)


def mixed_keys_sort_join(env: WorkerEnv) -> list[Any]:
    """Int keys on the left, str keys on the right: a sort join cannot order them."""
    plan = Plan.spread(2, 1, env.num_workers)
    join = Join(env.dataflow, plan, algorithm="sort")
    for source in plan.local_sources(env.worker_id):
        while not join.send_left(source, (source, "left")):
            join.progress()
        while not join.send_right(source, (f"key{source}", "right")):
            join.progress()
        join.finish_left(source)
        join.finish_right(source)
    join.wait(timeout=60)
    rows = list(join.result(0)) if 0 in plan.local_targets(env.worker_id) else []
    join.close()
    return rows
