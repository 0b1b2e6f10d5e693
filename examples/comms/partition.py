"""Partition: each array to the target a partitioner picks, all to all.

Each source sends --records arrays of --size integers per iteration; the partitioner here picks
the target from an array's first element, so every worker can tell which arrays each target must
get, and every target checks it got exactly those.

    python examples/comms/partition.py
    twister2 submit local examples/comms/partition.py --workers 3 -- --records 100
    twister2 submit mpi examples/comms/partition.py --workers 4 -c net.partition_routing=ring
"""

from __future__ import annotations

from typing import Any

import comms_example
import numpy as np

from twister2 import WorkerEnv
from twister2.net.batch import Partition


def by_first_element(value: np.ndarray, targets: int) -> int:
    """The partitioner: ``(value, number of targets) -> target index``."""
    return int(value[0]) % targets


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "partition")
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = {s: comms_example.arrays(opts, itr, s) for s in plan.local_sources(me)}
        with stopwatch:
            op = Partition(env.dataflow, plan, partitioner=by_first_element)
            for source, values in data.items():
                comms_example.send_all(opts, op, source, values)
                op.finish(source)
            op.wait()
        everything = [a for s in range(opts.sources) for a in comms_example.arrays(opts, itr, s)]
        for target in plan.local_targets(me):
            want = [a for a in everything if by_first_element(a, opts.targets) == target]
            checked += comms_example.check(
                opts, target, list(op.result(target)), want, ordered=False
            )
        op.close()  # removes spill files, if any
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "partition")
