"""Stream keyed reduce: a running sum per key at the target of the key's hash.

Every source streams --count pairs ``(key, array)`` over a few string keys; each time a key's
total changes its target gets ``(key, total)`` (values of one key in one batch are added first).
Each target checks that only its keys arrived, that every key's totals only grew, and that each
key's last total is the sum of all its arrays, computed locally.

    python examples/comms/stream_keyed_reduce.py
    twister2 submit local examples/comms/stream_keyed_reduce.py --workers 3 -- --count 20000
    twister2 submit mpi examples/comms/stream_keyed_reduce.py --workers 4 -- --targets 5
"""

from __future__ import annotations

from typing import Any

import stream_common as sc

from twister2 import WorkerEnv
from twister2.net.partitioners import stable_hash
from twister2.net.stream import StreamKeyedReduce


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = sc.options(env, "stream keyed reduce")
    plan, me = opts.plan(), env.worker_id
    values = {
        s: sc.corrupted(opts, s, [(sc.key(s, i), sc.array(opts, s, i)) for i in range(opts.count)])
        for s in plan.local_sources(me)
    }
    env.barrier("start")
    op = StreamKeyedReduce(env.dataflow, plan, "sum")
    outcome = sc.stream(op, plan, me, values)
    totals: dict[int, dict[str, Any]] = {t: {} for t in outcome.received}
    for s in range(opts.sources):
        for i in range(opts.count):
            k = sc.key(s, i)
            want = totals.get(stable_hash(k) % opts.targets)
            if want is not None:
                want[k] = want[k] + sc.array(opts, s, i) if k in want else sc.array(opts, s, i)
    for target, updates in outcome.received.items():
        last: dict[str, Any] = {}
        for k, total in updates:
            if k in last and (total < last[k]).any():
                sc.fail(opts, target, f"the running total of key {k!r} went down")
            last[k] = total
        sc.check(opts, target, last, totals[target])
    return sc.summary(opts, outcome)


if __name__ == "__main__":
    sc.launch(main, "stream keyed reduce")
