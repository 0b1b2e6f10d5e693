"""Hello world: every worker says hello, they meet at a barrier, and worker 0 collects a greeting
from every other worker over the channel.

    python examples/hello_world.py                       # 4 workers on the embedded local cluster
    twister2 submit local examples/hello_world.py --workers 2
    twister2 submit mpi examples/hello_world.py --workers 4
"""

from __future__ import annotations

import sys

import twister2
from twister2 import WorkerEnv


def main(env: WorkerEnv) -> str:
    host = env.workers[env.worker_id].host
    print(f"Hello from worker {env.worker_id} of {env.num_workers} on {host}", flush=True)
    env.barrier("hello")
    if env.worker_id != 0:
        env.comm.send(f"greetings from worker {env.worker_id}", dest=0, tag=1)
        return "sent"
    greetings = sorted(env.comm.recv(tag=1) for _ in range(env.num_workers - 1))
    expected = sorted(f"greetings from worker {i}" for i in range(1, env.num_workers))
    if greetings != expected:
        raise AssertionError(f"worker 0 received {greetings}, expected {expected}")
    print(f"worker 0 received {len(greetings)} greetings", flush=True)
    return "received"


if __name__ == "__main__":
    result = twister2.run(main, workers=4)
    print(f"job {result.job_id} {result.state.value}: {result.values}")
    sys.exit(0 if result.values[0] == "received" else 1)
