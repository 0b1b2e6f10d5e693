"""Gather: every source's array collected at one target, tagged with its source index.

Each source sends one array of --size integers per iteration; target 0 gets
``[(source, array), ...]`` in source order and checks it against the arrays computed locally.

    python examples/comms/gather.py
    twister2 submit local examples/comms/gather.py --workers 3 -- --sources 8 --size 10000
    twister2 submit mpi examples/comms/gather.py --workers 4
"""

from __future__ import annotations

from typing import Any

import comms_example

from twister2 import WorkerEnv
from twister2.net.batch import Gather


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "gather")
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = {s: [comms_example.array(opts, itr, s)] for s in plan.local_sources(me)}
        with stopwatch:
            op = Gather(env.dataflow, plan, target=0)
            for source, values in data.items():
                comms_example.send_all(opts, op, source, values)
                op.finish(source)
            op.wait()
        if plan.targets[0] == me:
            want = [(s, comms_example.array(opts, itr, s)) for s in range(opts.sources)]
            checked += comms_example.check(opts, 0, op.result(), want)
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "gather")
