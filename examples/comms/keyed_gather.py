"""Keyed gather: the arrays of equal keys grouped at the target of the key's hash, sorted by key.

Each source sends --records ``(key, array)`` pairs per iteration (integer keys, arrays of --size
integers); each target gets ``(key, [arrays])`` groups in key order (``sort=True``; past
``net.spill.memory_bytes`` this becomes an external merge sort on disk) and checks the keys' order
and every group against the groups computed locally.

    python examples/comms/keyed_gather.py
    twister2 submit local examples/comms/keyed_gather.py --workers 3 -- --records 500
    twister2 submit mpi examples/comms/keyed_gather.py --workers 4 -c net.spill.memory_bytes=100000
"""

from __future__ import annotations

from typing import Any

import comms_example

from twister2 import WorkerEnv
from twister2.net.batch import KeyedGather
from twister2.net.partitioners import HashPartitioner


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "keyed gather")
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = {s: comms_example.keyed(opts, itr, s) for s in plan.local_sources(me)}
        with stopwatch:
            op = KeyedGather(env.dataflow, plan, sort=True)
            for source, pairs in data.items():
                comms_example.send_all(opts, op, source, pairs)
                op.finish(source)
            op.wait()
        groups: dict[int, list[Any]] = {}
        for s in range(opts.sources):
            for key, value in comms_example.keyed(opts, itr, s):
                groups.setdefault(key, []).append(value)
        target_of = HashPartitioner()
        for target in plan.local_targets(me):
            # keys in order; the values within a group in any order
            got = [(key, comms_example.bag(values)) for key, values in op.result(target)]
            want = [(k, comms_example.bag(vs)) for k, vs in sorted(groups.items())]
            want = [(k, vs) for k, vs in want if target_of(k, opts.targets) == target]
            checked += comms_example.check(opts, target, got, want)
        op.close()
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "keyed gather")
