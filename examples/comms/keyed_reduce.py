"""Keyed reduce: the arrays of equal keys summed, each key's total at the target of its hash.

Each source sends --records ``(key, array)`` pairs per iteration (integer keys, arrays of --size
integers); values are combined on the sending worker first, then at the key's target, which
checks ``{key: sum of its arrays}`` against the totals computed locally.

    python examples/comms/keyed_reduce.py
    twister2 submit local examples/comms/keyed_reduce.py --workers 3 -- --records 200
    twister2 submit mpi examples/comms/keyed_reduce.py --workers 4
"""

from __future__ import annotations

from typing import Any

import comms_example
import numpy as np

from twister2 import WorkerEnv
from twister2.net.batch import KeyedReduce
from twister2.net.partitioners import HashPartitioner


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "keyed reduce")
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = {s: comms_example.keyed(opts, itr, s) for s in plan.local_sources(me)}
        with stopwatch:
            op = KeyedReduce(env.dataflow, plan, "sum")
            for source, pairs in data.items():
                comms_example.send_all(opts, op, source, pairs)
                op.finish(source)
            op.wait()
        totals: dict[int, np.ndarray] = {}
        for s in range(opts.sources):
            for key, value in comms_example.keyed(opts, itr, s):
                totals[key] = totals[key] + value if key in totals else value
        target_of = HashPartitioner()
        for target in plan.local_targets(me):
            want = {k: v for k, v in totals.items() if target_of(k, opts.targets) == target}
            checked += comms_example.check(opts, target, op.result(target), want)
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "keyed reduce")
