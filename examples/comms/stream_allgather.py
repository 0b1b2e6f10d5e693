"""Stream allgather: the i-th values of every source collected, in source order, at every target.

Every source streams --count arrays of --size integers; every target gets ``count`` lists
``[(source, array), ...]`` (one entry per source, by source), in order, and checks each against
the list computed locally.

    python examples/comms/stream_allgather.py
    twister2 submit local examples/comms/stream_allgather.py --workers 3 -- --count 20000
    twister2 submit mpi examples/comms/stream_allgather.py --workers 4 -- --sources 7 --targets 3
"""

from __future__ import annotations

from typing import Any

import stream_common as sc

from twister2 import WorkerEnv
from twister2.net.stream import StreamAllGather


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = sc.options(env, "stream allgather")
    plan, me = opts.plan(), env.worker_id
    values = {
        s: sc.corrupted(opts, s, [sc.array(opts, s, i) for i in range(opts.count)])
        for s in plan.local_sources(me)
    }
    env.barrier("start")
    op = StreamAllGather(env.dataflow, plan)
    outcome = sc.stream(op, plan, me, values)
    rows = [[(s, sc.array(opts, s, i)) for s in range(opts.sources)] for i in range(opts.count)]
    for target, got in outcome.received.items():
        sc.check(opts, target, got, rows)
    return sc.summary(opts, outcome)


if __name__ == "__main__":
    sc.launch(main, "stream allgather")
