"""Stream partition: each value to the target a partitioner picks, as soon as it arrives.

Every source streams --count values ``(source, seq, array)`` (arrays of --size integers); the
partitioner here picks the target from the array's first element, so every worker can tell which
values each of its targets must get. Each target checks it got exactly those, and those of each
source in the order sent.

    python examples/comms/stream_partition.py          # 4 workers on the embedded local cluster
    twister2 submit local examples/comms/stream_partition.py --workers 3 -- --count 20000
    twister2 submit mpi examples/comms/stream_partition.py --workers 4 -- --sources 7 --targets 3
"""

from __future__ import annotations

from typing import Any

import stream_common as sc

from twister2 import WorkerEnv
from twister2.net.stream import StreamPartition


def by_first_element(value: tuple[int, int, Any], targets: int) -> int:
    """The partitioner: ``(value, number of targets) -> target index``."""
    return int(value[2][0]) % targets


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = sc.options(env, "stream partition")
    plan, me = opts.plan(), env.worker_id
    values = {
        s: sc.corrupted(opts, s, [sc.record(opts, s, i) for i in range(opts.count)])
        for s in plan.local_sources(me)
    }
    env.barrier("start")
    op = StreamPartition(env.dataflow, plan, partitioner=by_first_element)
    outcome = sc.stream(op, plan, me, values)
    want: dict[int, list[Any]] = {t: [] for t in outcome.received}
    for s in range(opts.sources):
        for i in range(opts.count):
            value = sc.record(opts, s, i)
            want.get(by_first_element(value, opts.targets), []).append(value)
    for target, got in outcome.received.items():
        sc.check(opts, target, got, want[target], ordered=False)
        sc.check_order(opts, target, got)
    return sc.summary(opts, outcome)


if __name__ == "__main__":
    sc.launch(main, "stream partition")
