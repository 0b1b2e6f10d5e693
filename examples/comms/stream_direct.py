"""Stream direct: source ``i``'s values to target ``i``, in the order sent.

Every source streams --count values ``(source, seq, array)``; the plan has as many targets as
sources (--sources and --targets must match), and target ``i`` checks it got source ``i``'s
values, all of them, in order.

    python examples/comms/stream_direct.py
    twister2 submit local examples/comms/stream_direct.py --workers 3 -- --count 20000
    twister2 submit mpi examples/comms/stream_direct.py --workers 4 -- --sources 6 --targets 6
"""

from __future__ import annotations

from typing import Any

import stream_common as sc

from twister2 import WorkerEnv
from twister2.net.stream import StreamDirect


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = sc.options(env, "stream direct", one_to_one=True)
    plan, me = opts.plan(), env.worker_id
    values = {
        s: sc.corrupted(opts, s, [sc.record(opts, s, i) for i in range(opts.count)])
        for s in plan.local_sources(me)
    }
    env.barrier("start")
    op = StreamDirect(env.dataflow, plan)
    outcome = sc.stream(op, plan, me, values)
    for target, got in outcome.received.items():
        sc.check(opts, target, got, [sc.record(opts, target, i) for i in range(opts.count)])
    return sc.summary(opts, outcome)


if __name__ == "__main__":
    sc.launch(main, "stream direct", one_to_one=True)
