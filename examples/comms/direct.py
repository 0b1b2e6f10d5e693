"""Direct: source i's arrays to target i, one to one.

Each source sends --records arrays of --size integers per iteration to its own target (the plan
has as many targets as sources: --targets defaults to --sources); every target checks it got
exactly its source's arrays (in any order).

    python examples/comms/direct.py
    twister2 submit local examples/comms/direct.py --workers 2 -- --sources 5
    twister2 submit mpi examples/comms/direct.py --workers 4
"""

from __future__ import annotations

from typing import Any

import comms_example

from twister2 import WorkerEnv
from twister2.net.batch import Direct


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "direct", one_to_one=True)
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        data = {s: comms_example.arrays(opts, itr, s) for s in plan.local_sources(me)}
        with stopwatch:
            op = Direct(env.dataflow, plan)
            for source, values in data.items():
                comms_example.send_all(opts, op, source, values)
                op.finish(source)
            op.wait()
        for target in plan.local_targets(me):
            got = list(op.result(target))
            want = comms_example.arrays(opts, itr, target)
            checked += comms_example.check(opts, target, got, want, ordered=False)
        op.close()
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "direct", one_to_one=True)
