"""Allgather: every source's array, tagged with its source index, delivered to every target.

Each source sends one array of --size integers per iteration; every worker that hosts a target
checks the gathered ``[(source, array), ...]`` against the arrays computed locally.

    python examples/comms/allgather.py
    twister2 submit local examples/comms/allgather.py --workers 3 -- --targets 7
    twister2 submit mpi examples/comms/allgather.py --workers 4
"""

from __future__ import annotations

from typing import Any

import comms_example

from twister2 import WorkerEnv
from twister2.net.batch import AllGather


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "allgather")
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = {s: [comms_example.array(opts, itr, s)] for s in plan.local_sources(me)}
        with stopwatch:
            op = AllGather(env.dataflow, plan)
            for source, values in data.items():
                comms_example.send_all(opts, op, source, values)
                op.finish(source)
            op.wait()
        want = [(s, comms_example.array(opts, itr, s)) for s in range(opts.sources)]
        for target in plan.local_targets(me):
            checked += comms_example.check(opts, target, op.result(), want)
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "allgather")
