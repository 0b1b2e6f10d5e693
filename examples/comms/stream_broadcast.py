"""Stream broadcast: one source's values to every target, in the order sent.

Source 0 streams --count values ``(0, seq, array)``; the plan's other sources send nothing. Every
target checks it got all of them, in order.

    python examples/comms/stream_broadcast.py
    twister2 submit local examples/comms/stream_broadcast.py --workers 3 -- --count 20000
    twister2 submit mpi examples/comms/stream_broadcast.py --workers 4 -- --targets 7
"""

from __future__ import annotations

from typing import Any

import stream_common as sc

from twister2 import WorkerEnv
from twister2.net.stream import StreamBroadcast

ROOT = 0


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = sc.options(env, "stream broadcast")
    plan, me = opts.plan(), env.worker_id
    values = {}
    if plan.sources[ROOT] == me:
        values[ROOT] = sc.corrupted(
            opts, ROOT, [sc.record(opts, ROOT, i) for i in range(opts.count)]
        )
    env.barrier("start")
    op = StreamBroadcast(env.dataflow, plan, source=ROOT)
    outcome = sc.stream(op, plan, me, values)
    want = [sc.record(opts, ROOT, i) for i in range(opts.count)]
    for target, got in outcome.received.items():
        sc.check(opts, target, got, want)
    return sc.summary(opts, outcome)


if __name__ == "__main__":
    sc.launch(main, "stream broadcast")
