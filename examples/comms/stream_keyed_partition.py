"""Stream keyed partition: ``(key, value)`` pairs to the target of the key's hash, as they come.

Every source streams --count pairs ``(key, (source, seq, array))`` over a few string keys; the
default partitioner sends a key to target ``stable_hash(key) % targets`` on every worker. Each
target checks it got exactly the pairs of its keys, and those of each source in the order sent.

    python examples/comms/stream_keyed_partition.py
    twister2 submit local examples/comms/stream_keyed_partition.py --workers 3 -- --count 20000
    twister2 submit mpi examples/comms/stream_keyed_partition.py --workers 4 -- --targets 5
"""

from __future__ import annotations

from typing import Any

import stream_common as sc

from twister2 import WorkerEnv
from twister2.net.partitioners import stable_hash
from twister2.net.stream import StreamKeyedPartition


def pair(opts: sc.Options, source: int, seq: int) -> tuple[str, Any]:
    return (sc.key(source, seq), sc.record(opts, source, seq))


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = sc.options(env, "stream keyed partition")
    plan, me = opts.plan(), env.worker_id
    values = {
        s: sc.corrupted(opts, s, [pair(opts, s, i) for i in range(opts.count)])
        for s in plan.local_sources(me)
    }
    env.barrier("start")
    op = StreamKeyedPartition(env.dataflow, plan)
    outcome = sc.stream(op, plan, me, values)
    want: dict[int, list[Any]] = {t: [] for t in outcome.received}
    for s in range(opts.sources):
        for i in range(opts.count):
            k, value = pair(opts, s, i)
            want.get(stable_hash(k) % opts.targets, []).append((k, value))
    for target, got in outcome.received.items():
        sc.check(opts, target, got, want[target], ordered=False)
        sc.check_order(opts, target, (value for _, value in got))
    return sc.summary(opts, outcome)


if __name__ == "__main__":
    sc.launch(main, "stream keyed partition")
