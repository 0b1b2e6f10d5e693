"""Stream allreduce: the i-th arrays of every source summed, the i-th result to every target.

Every source streams --count arrays of --size integers; every target gets ``count`` sums, in
order, and checks each against the sum computed locally.

    python examples/comms/stream_allreduce.py
    twister2 submit local examples/comms/stream_allreduce.py --workers 3 -- --count 20000
    twister2 submit mpi examples/comms/stream_allreduce.py --workers 4 -- --sources 7 --targets 3
"""

from __future__ import annotations

from typing import Any

import stream_common as sc

from twister2 import WorkerEnv
from twister2.net.stream import StreamAllReduce


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = sc.options(env, "stream allreduce")
    plan, me = opts.plan(), env.worker_id
    values = {
        s: sc.corrupted(opts, s, [sc.array(opts, s, i) for i in range(opts.count)])
        for s in plan.local_sources(me)
    }
    env.barrier("start")
    op = StreamAllReduce(env.dataflow, plan, "sum")
    outcome = sc.stream(op, plan, me, values)
    sums = [sum(sc.array(opts, s, i) for s in range(opts.sources)) for i in range(opts.count)]
    for target, got in outcome.received.items():
        sc.check(opts, target, got, sums)
    return sc.summary(opts, outcome)


if __name__ == "__main__":
    sc.launch(main, "stream allreduce")
