"""Entry functions of the reliability tests' jobs (workers import them from here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from twister2 import WorkerEnv


def children_then_wait(env: WorkerEnv) -> None:
    """Start a child process, say so in ``<args[0]>/w<id>.json``; the last worker then stops
    itself (SIGSTOP), the others wait forever."""
    child = subprocess.Popen(["sleep", "1000"])
    spill = env.scratch_dir / "spill.bin"
    spill.write_bytes(b"x" * 1000)
    info = {"pid": os.getpid(), "child": child.pid, "scratch": str(env.scratch_dir)}
    out = Path(env.args[0])
    (out / f"w{env.worker_id}.tmp").write_text(json.dumps(info))
    (out / f"w{env.worker_id}.tmp").rename(out / f"w{env.worker_id}.json")
    if env.worker_id == env.num_workers - 1:
        os.kill(os.getpid(), signal.SIGSTOP)
    while True:
        time.sleep(1.0)


def never_returns(env: WorkerEnv) -> None:
    """Worker 0 never returns; the others finish at once."""
    if env.worker_id == 0:
        while True:
            time.sleep(1.0)


def scratch_modes(env: WorkerEnv) -> dict[str, int]:
    """The modes of the job's and the worker's scratch directories and of a spill file."""
    from twister2.net.spill import SpillStore

    store = SpillStore(limit_bytes=10, folder=env.scratch_dir / "spill", key=lambda r: r)
    store.extend(range(1000))
    files = [p for p in env.scratch_dir.rglob("*") if p.is_file()]
    modes = {
        "job": env.scratch_dir.parent.stat().st_mode & 0o777,
        "worker": env.scratch_dir.stat().st_mode & 0o777,
        "files": len(files),
        "file_modes": sorted({p.stat().st_mode & 0o777 for p in files}),  # type: ignore[dict-item]
    }
    store.close()
    return modes  # type: ignore[return-value]


def victim_dies_mid_exchange(env: WorkerEnv) -> None:
    """The last worker sends to everyone, then is SIGKILLed while the others wait to receive
    from it again: they fail with errors about its closed connection."""
    victim = env.num_workers - 1
    if env.worker_id == victim:
        for dest in range(env.num_workers - 1):
            env.comm.send("first", dest=dest)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    assert env.comm.recv(source=victim, timeout=60) == "first"
    env.comm.recv(source=victim, timeout=60)  # never comes: the victim is dead


def listening_addresses(env: WorkerEnv) -> list[str]:
    """The addresses this worker and the processes above it (up to the submitter, whose pid is
    ``args[0]``) listen on, once a message went round (so MPI opened what it opens)."""
    import psutil

    env.comm.send(env.worker_id, dest=(env.worker_id + 1) % env.num_workers)
    env.comm.recv(source=(env.worker_id - 1) % env.num_workers, timeout=60)
    env.barrier("listening")
    found = set()
    proc: psutil.Process | None = psutil.Process()
    while proc is not None and proc.pid != int(env.args[0]):
        found |= {
            str(c.laddr.ip)
            for c in proc.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        proc = proc.parent()
    return sorted(found)
