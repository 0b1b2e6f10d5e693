"""Entry functions of the io tests' jobs (workers import them from here).

Each takes ``env.args``: the output URL, the format, and for the failing jobs how to fail.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from twister2 import WorkerEnv
from twister2.io import FileSystem, Sink, assign_splits, plan_splits, read_split

ROWS = 100


def record(fmt: str, worker: int, i: int) -> Any:
    if fmt == "text":
        return f"worker {worker} line {i}"
    return {"worker": worker, "i": i}


def _write_part(env: WorkerEnv, sink: Sink, *, die_mid_write: bool = False) -> None:
    fmt = env.args[1]
    with sink.open(env.worker_id) as writer:
        for i in range(ROWS):
            writer.write(record(fmt, env.worker_id, i))
            if die_mid_write and i == ROWS // 2 and env.worker_id == env.num_workers - 1:
                writer.writer.flush_records()
                writer.stream.flush()
                os.kill(os.getpid(), signal.SIGKILL)


def write_and_commit(env: WorkerEnv) -> str:
    """Every worker writes its part; worker 0 commits after a barrier."""
    out, fmt = env.args[0], env.args[1]
    overwrite = len(env.args) > 2 and env.args[2] == "overwrite"
    sink = Sink.for_job(env, out, fmt, overwrite=overwrite)
    _write_part(env, sink)
    sink.commit_job(env)
    return sink.url


def fail_before_commit(env: WorkerEnv) -> None:
    """Parts are written; then the last worker fails (``env.args[2]`` says how) before the
    commit, which never runs."""
    out, fmt, how = env.args[0], env.args[1], env.args[2]
    sink = Sink.for_job(env, out, fmt)
    _write_part(env, sink, die_mid_write=how == "sigkill-mid-write")
    if env.worker_id == env.num_workers - 1:
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "raise":
            raise RuntimeError("failing before the commit")
    sink.commit_job(env)


def read_share(env: WorkerEnv) -> list[str]:
    """This worker's lines of the text input ``env.args[0]``."""
    splits = plan_splits(env.args[0], env.num_workers, config=env.config)
    mine = assign_splits(splits, env.num_workers)[env.worker_id]
    return [line for split in mine for line in read_split(split, env.config)]


def _die_at_change(fs: FileSystem, k: int, sig: signal.Signals) -> None:
    """Make this process send itself ``sig`` just before its ``k``-th (from 0) change of
    ``fs`` (a rename or a delete): the fault-injection hook of the commit tests. The change
    itself is real; only the moment of the kill is chosen."""
    count = itertools.count()

    def deadly(method: Callable[..., None]) -> Callable[..., None]:
        def call(*args: Any) -> None:
            if next(count) == k:
                os.kill(os.getpid(), sig)
                time.sleep(60)  # the signal ends the process; this is never reached
            method(*args)

        return call

    fs.move = deadly(fs.move)  # type: ignore[method-assign]
    fs.delete = deadly(fs.delete)  # type: ignore[method-assign]


def commit_killed(env: WorkerEnv) -> str:
    """Every worker writes its part; worker 0, the committer, is killed by ``env.args[3]``
    (a signal name) before its ``env.args[4]``-th file system change of the commit."""
    out, fmt, mode, signame, k = env.args
    sink = Sink.for_job(env, out, fmt, overwrite=mode == "overwrite")
    _write_part(env, sink)
    if env.worker_id == 0:
        _die_at_change(sink.fs, int(k), getattr(signal, signame))
    sink.commit_job(env)
    return sink.url


def commit_slowly(env: WorkerEnv) -> str:
    """As :func:`write_and_commit` (with overwrite), but each rename of worker 0's commit
    waits ``env.args[2]`` seconds first: a slowed commit for readers and killers to race."""
    out, fmt, delay = env.args[0], env.args[1], float(env.args[2])
    sink = Sink.for_job(env, out, fmt, overwrite=True)
    _write_part(env, sink)
    if env.worker_id == 0:
        real_move = sink.fs.move

        def slow_move(src: str, dst: str) -> None:
            time.sleep(delay)
            real_move(src, dst)

        sink.fs.move = slow_move  # type: ignore[method-assign]
    sink.commit_job(env)
    return sink.url
