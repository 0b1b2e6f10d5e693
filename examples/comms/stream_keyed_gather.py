"""Stream keyed gather: ``(key, [values])`` groups at the target of the key's hash, as they come.

Every source streams --count pairs ``(key, (source, seq, array))`` over a few string keys; each
received batch becomes one group per key. Each target joins its groups and checks every key got
exactly its values, and those of each source in the order sent.

    python examples/comms/stream_keyed_gather.py
    twister2 submit local examples/comms/stream_keyed_gather.py --workers 3 -- --count 20000
    twister2 submit mpi examples/comms/stream_keyed_gather.py --workers 4 -- --targets 5
"""

from __future__ import annotations

from typing import Any

import stream_common as sc

from twister2 import WorkerEnv
from twister2.net.partitioners import stable_hash
from twister2.net.stream import StreamKeyedGather


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = sc.options(env, "stream keyed gather")
    plan, me = opts.plan(), env.worker_id
    values = {
        s: sc.corrupted(opts, s, [(sc.key(s, i), sc.record(opts, s, i)) for i in range(opts.count)])
        for s in plan.local_sources(me)
    }
    env.barrier("start")
    op = StreamKeyedGather(env.dataflow, plan)
    outcome = sc.stream(op, plan, me, values)
    want: dict[int, dict[str, list[Any]]] = {t: {} for t in outcome.received}
    for s in range(opts.sources):
        for i in range(opts.count):
            k = sc.key(s, i)
            groups = want.get(stable_hash(k) % opts.targets)
            if groups is not None:
                groups.setdefault(k, []).append(sc.record(opts, s, i))
    for target, got in outcome.received.items():
        joined: dict[str, list[Any]] = {}
        for k, group in got:
            joined.setdefault(k, []).extend(group)
        for records in joined.values():
            sc.check_order(opts, target, records)
        sc.check(
            opts,
            target,
            {k: sorted(vs, key=lambda r: r[:2]) for k, vs in sorted(joined.items())},
            {k: vs for k, vs in sorted(want[target].items())},
        )
    return sc.summary(opts, outcome)


if __name__ == "__main__":
    sc.launch(main, "stream keyed gather")
