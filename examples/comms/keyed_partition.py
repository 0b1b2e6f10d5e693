"""Keyed partition: ``(key, array)`` pairs routed by a hash of the key.

Each source sends --records pairs per iteration (integer keys, arrays of --size integers); the
default partitioner sends a key to target ``stable_hash(key) % targets``, so every pair with one
key lands at one target, and every target checks it got exactly its keys' pairs.

    python examples/comms/keyed_partition.py
    twister2 submit local examples/comms/keyed_partition.py --workers 3 -- --records 64
    twister2 submit mpi examples/comms/keyed_partition.py --workers 4
"""

from __future__ import annotations

from typing import Any

import comms_example

from twister2 import WorkerEnv
from twister2.net.batch import KeyedPartition
from twister2.net.partitioners import HashPartitioner


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "keyed partition")
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = {s: comms_example.keyed(opts, itr, s) for s in plan.local_sources(me)}
        with stopwatch:
            op = KeyedPartition(env.dataflow, plan)
            for source, pairs in data.items():
                comms_example.send_all(opts, op, source, pairs)
                op.finish(source)
            op.wait()
        everything = [p for s in range(opts.sources) for p in comms_example.keyed(opts, itr, s)]
        target_of = HashPartitioner()
        for target in plan.local_targets(me):
            want = [(k, v) for k, v in everything if target_of(k, opts.targets) == target]
            checked += comms_example.check(
                opts, target, list(op.result(target)), want, ordered=False
            )
        op.close()
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "keyed partition")
