"""Harp hello world: worker 0 broadcasts a table, and every worker greets the others back.

Worker 0 fills a table with a greeting (a Python object partition) and an array partition, and
``broadcast`` delivers it to every worker, which checks it; then every worker puts a greeting
of its own in a table, and ``allgather`` gives every worker all of them. A wrong value fails
the job.

    python examples/harp/hello_world.py                    # 4 workers on the local cluster
    twister2 submit local examples/harp/hello_world.py --workers 3
    twister2 submit mpi examples/harp/hello_world.py --workers 2
"""

from __future__ import annotations

import sys

import numpy as np

import twister2
from twister2 import WorkerEnv
from twister2.harp import Harp, Table

GREETING = "hello from worker 0"


def main(env: WorkerEnv) -> str:
    harp = Harp.from_env(env, context="hello")
    table = Table("replace")
    if harp.is_master:
        table[0] = GREETING
        table[1] = np.arange(10) * 10
    got = harp.broadcast(table, root=0, operation="greeting")
    if got.ids() != [0, 1] or got[0] != GREETING or not np.array_equal(got[1], np.arange(10) * 10):
        msg = f"worker {env.worker_id} received {got!r}: {got.to_dict()}"
        raise AssertionError(msg)
    print(f"worker {env.worker_id} of {env.num_workers} received {got[0]!r}", flush=True)
    mine = Table("replace", {env.worker_id: f"hello back from worker {env.worker_id}"})
    replies = harp.allgather(mine, operation="replies")
    want = {w: f"hello back from worker {w}" for w in range(env.num_workers)}
    if replies.to_dict() != want:
        msg = f"worker {env.worker_id} gathered {replies.to_dict()}, expected {want}"
        raise AssertionError(msg)
    return "ok"


if __name__ == "__main__":
    result = twister2.run(main, workers=4)
    if result.values != ["ok"] * len(result.values):
        print(f"harp hello world: unexpected results {result.values}", file=sys.stderr)
        sys.exit(1)
    n = len(result.values)
    print(f"harp hello world: {n} worker{'s' if n != 1 else ''} received the broadcast")
