"""Broadcast: one source's arrays delivered to every target, down a tree of workers.

Source 0 sends --records arrays of --size integers per iteration (the other sources send
nothing); every worker that hosts a target checks that it got exactly those arrays, in order.

    python examples/comms/broadcast.py
    twister2 submit local examples/comms/broadcast.py --workers 3 -- --targets 9 --records 4
    twister2 submit mpi examples/comms/broadcast.py --workers 4 -c net.tree_degree=3
"""

from __future__ import annotations

from typing import Any

import comms_example

from twister2 import WorkerEnv
from twister2.net.batch import Broadcast

ROOT = 0


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "broadcast")
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = comms_example.arrays(opts, itr, ROOT) if plan.sources[ROOT] == me else []
        with stopwatch:
            op = Broadcast(env.dataflow, plan, source=ROOT)
            if plan.sources[ROOT] == me:
                comms_example.send_all(opts, op, ROOT, data)
                op.finish(ROOT)
            op.wait()
        targets = plan.local_targets(me)
        if targets:
            want = comms_example.arrays(opts, itr, ROOT)
            for target in targets:
                checked += comms_example.check(opts, target, op.result(target), want)
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "broadcast")
