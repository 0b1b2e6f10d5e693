"""Reduce: every source's array summed element-wise into one target.

Each of the plan's sources sends one array of --size integers per iteration; target 0 gets their
SUM and checks it against the sum computed locally from the same seeds.

    python examples/comms/reduce.py                     # 4 workers on the embedded local cluster
    twister2 submit local examples/comms/reduce.py --workers 2 -- --size 100000 --itr 20
    twister2 submit mpi examples/comms/reduce.py --workers 4 -- --sources 7 --targets 3
"""

from __future__ import annotations

from typing import Any

import comms_example

from twister2 import WorkerEnv
from twister2.net.batch import Reduce


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "reduce")
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = {s: [comms_example.array(opts, itr, s)] for s in plan.local_sources(me)}
        with stopwatch:
            op = Reduce(env.dataflow, plan, "sum", target=0)
            for source, values in data.items():
                comms_example.send_all(opts, op, source, values)
                op.finish(source)
            op.wait()
        if plan.targets[0] == me:
            want = sum(comms_example.array(opts, itr, s) for s in range(opts.sources))
            checked += comms_example.check(opts, 0, op.result(), want)
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "reduce")
