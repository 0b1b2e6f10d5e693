"""Allreduce: every source's array summed element-wise and delivered to every target.

Each source sends one array of --size integers per iteration; the SUM goes up a tree of workers
and back down, and every worker that hosts a target checks it against the locally computed sum.

    python examples/comms/allreduce.py
    twister2 submit local examples/comms/allreduce.py --workers 3 -- --size 100000
    twister2 submit mpi examples/comms/allreduce.py --workers 4 -c net.tree_degree=4
"""

from __future__ import annotations

from typing import Any

import comms_example

from twister2 import WorkerEnv
from twister2.net.batch import AllReduce


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "allreduce")
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = {s: [comms_example.array(opts, itr, s)] for s in plan.local_sources(me)}
        with stopwatch:
            op = AllReduce(env.dataflow, plan, "sum")
            for source, values in data.items():
                comms_example.send_all(opts, op, source, values)
                op.finish(source)
            op.wait()
        targets = plan.local_targets(me)
        if targets:
            want = sum(comms_example.array(opts, itr, s) for s in range(opts.sources))
            for target in targets:
                checked += comms_example.check(opts, target, op.result(), want)
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "allreduce")
