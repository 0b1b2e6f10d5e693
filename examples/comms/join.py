"""Join: two inputs of ``(key, array)`` pairs joined on key at each target.

Each source sends --records left pairs and --records right pairs per iteration (integer keys,
arrays of --size integers); both sides are routed by the key's hash, so equal keys meet at one
target, which joins them (``--how`` inner, left, right or outer; ``--algorithm`` hash or sort)
and checks the ``(key, left, right)`` rows against a join computed locally.

    python examples/comms/join.py --how outer
    twister2 submit local examples/comms/join.py --workers 3 -- --algorithm sort --records 100
    twister2 submit mpi examples/comms/join.py --workers 4 -- --how left
"""

from __future__ import annotations

import argparse
from typing import Any

import comms_example

from twister2 import WorkerEnv
from twister2.net.batch import Join
from twister2.net.partitioners import HashPartitioner

LEFT, RIGHT = 1, 2  # data salts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--how", choices=["inner", "left", "right", "outer"], default="inner")
    parser.add_argument("--algorithm", choices=["hash", "sort"], default="hash")


def reference(left: list[Any], right: list[Any], how: str) -> list[tuple[Any, Any, Any]]:
    """The join of two lists of pairs, in one process."""
    rows = [(k, lv, rv) for k, lv in left for k2, rv in right if k == k2]
    right_keys, left_keys = {k for k, _ in right}, {k for k, _ in left}
    if how in ("left", "outer"):
        rows += [(k, lv, None) for k, lv in left if k not in right_keys]
    if how in ("right", "outer"):
        rows += [(k, None, rv) for k, rv in right if k not in left_keys]
    return rows


def main(env: WorkerEnv) -> dict[str, Any]:
    opts = comms_example.options(env, "join", add_arguments)
    how, algorithm = opts.args.how, opts.args.algorithm
    plan, me = opts.plan(), env.worker_id
    stopwatch, checked = comms_example.Stopwatch(), 0
    env.barrier("start")
    for itr in range(opts.itr):
        mine = plan.local_sources(me)
        left = {s: comms_example.keyed(opts, itr, s, salt=LEFT) for s in mine}
        right = {s: comms_example.keyed(opts, itr, s, salt=RIGHT) for s in mine}
        with stopwatch:
            op = Join(env.dataflow, plan, how=how, algorithm=algorithm)
            for source in mine:
                comms_example.send_all(opts, op, source, left[source], op.send_left)
                comms_example.send_all(opts, op, source, right[source], op.send_right)
                op.finish_left(source)
                op.finish_right(source)
            op.wait()
        rows = reference(
            [p for s in range(opts.sources) for p in comms_example.keyed(opts, itr, s, salt=LEFT)],
            [p for s in range(opts.sources) for p in comms_example.keyed(opts, itr, s, salt=RIGHT)],
            how,
        )
        target_of = HashPartitioner()
        for target in plan.local_targets(me):
            want = [row for row in rows if target_of(row[0], opts.targets) == target]
            checked += comms_example.check(
                opts, target, list(op.result(target)), want, ordered=False
            )
        op.close()
    return opts.summary(stopwatch.seconds, checked)


if __name__ == "__main__":
    comms_example.launch(main, "join", add_arguments)
