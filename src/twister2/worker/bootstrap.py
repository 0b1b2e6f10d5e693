"""A worker process: join the job, open the channel, run the entry function, report the end.

Launchers start ``python -m twister2.worker`` with the job's id, the job master's address and the
job's secret in the environment (``TWISTER2_JOB_ID``, ``TWISTER2_MASTER_ADDRESS``,
``TWISTER2_JOB_SECRET``) and, optionally, the id the worker should take
(``TWISTER2_WORKER_INDEX``; under mpiexec the MPI rank).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twister2 import wire
from twister2.config import Config
from twister2.job import Entry
from twister2.master.client import MasterClient, MasterError, MasterUnreachable, parse_address
from twister2.master.record import END_BARRIER
from twister2.net.channel import Channel, create_endpoint
from twister2.scratch import worker_scratch
from twister2.shipping import loads_entry
from twister2.worker.env import WorkerEnv, WorkerInfo

__all__ = ["load_entry", "main"]

SCRIPT_MODULE = "__twister2_main__"

_RANK_VARIABLES = (
    "TWISTER2_WORKER_INDEX",
    "PMI_RANK",
    "OMPI_COMM_WORLD_RANK",
    "PMIX_RANK",
    "SLURM_PROCID",
)


def requested_id() -> int | None:
    for name in _RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def load_entry(entry: Entry, sys_path: list[str]) -> Callable[..., Any]:
    """Import the entry function the way the submitting process found it (or unpickle it)."""
    for path in reversed(sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    if entry.value is not None:
        return loads_entry(entry.value)
    if entry.script:
        script = Path(entry.script)
        sys.path.insert(0, str(script.parent))
        spec = importlib.util.spec_from_file_location(SCRIPT_MODULE, script)
        if spec is None or spec.loader is None:
            msg = f"cannot load the job's script {script}"
            raise ImportError(msg)
        module = importlib.util.module_from_spec(spec)
        sys.modules[SCRIPT_MODULE] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(entry.module or "")
    target: Any = module
    for part in entry.function.split("."):
        target = getattr(target, part)
    if not callable(target):
        msg = f"{entry.function} in {entry.script or entry.module} is not callable"
        raise TypeError(msg)
    return target  # type: ignore[no-any-return]


def _channel_scheme(config: Mapping[str, Any], cluster: str) -> str:
    scheme = str(config["network.channel"])
    if scheme == "auto":
        return "mpi" if cluster == "mpi" else "tcp"
    if scheme == "mpi" and cluster != "mpi":
        msg = (
            f"network.channel is 'mpi' but the job runs on the {cluster!r} cluster; the mpi "
            "channel needs `twister2 submit mpi ...` (or set network.channel to tcp or auto)"
        )
        raise ValueError(msg)
    return scheme


def _import_channels() -> None:
    import twister2.net.mpi
    import twister2.net.tcp  # noqa: F401  (registers "tcp")


def _logger(job_id: str, wid: int, level: str) -> logging.LoggerAdapter[logging.Logger]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {job_id} w{wid} %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return logging.LoggerAdapter(logging.getLogger("twister2.job"), {"worker_id": wid})


class _LogShipper(logging.Handler):
    """Ships the worker's log records (INFO and up) to its job master as ``log`` events.

    Each line is written, as it is logged, to a connection of its own to the job master (no
    buffering in the worker, so the lines of a worker killed a moment later are already on their
    way); the master writes the lines that arrive together as one event. At most ``rate`` lines a
    second go: a chatty worker cannot flood the master, and the lines past that are counted in
    the next line's ``dropped``. ``close`` sends the last count and waits until the master has
    written everything (call it before reporting the worker's end).
    """

    MAX_MESSAGE = 4000
    SEND_TIMEOUT = 10.0

    def __init__(self, master: MasterClient, rate: int) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._sock = wire.connect(master.address, master.secret)
        self._sock.settimeout(self.SEND_TIMEOUT)
        wire.send_frame(self._sock, {"op": "logs", "worker_id": master.worker_id})
        self._rate = rate
        self._window = time.monotonic()
        self._sent = 0
        self._dropped = 0
        self._broken = False
        self._guard = threading.Lock()
        self._busy = threading.local()  # a line logged while shipping one is not shipped

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "active", False):
            return
        self._busy.active = True
        try:
            line = {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "message": self.format(record)[: self.MAX_MESSAGE],
            }
            with self._guard:
                now = time.monotonic()
                if now - self._window >= 1.0:
                    self._window, self._sent = now, 0
                if self._sent >= self._rate:
                    self._dropped += 1
                    return
                self._sent += 1
                dropped, self._dropped = self._dropped, 0
                self._write({"lines": [line], "dropped": dropped})
        except Exception:
            self.handleError(record)
        finally:
            self._busy.active = False

    def _write(self, frame: dict[str, Any]) -> None:
        if self._broken:
            return
        try:
            wire.send_frame(self._sock, frame)
        except OSError:
            self._broken = True  # the master is gone or stuck: the job ends without the lines

    def close(self) -> None:
        logging.getLogger().removeHandler(self)
        with self._guard:
            self._write({"lines": [], "dropped": self._dropped, "sync": True})
            if not self._broken:
                with contextlib.suppress(OSError):
                    wire.recv_frame(self._sock)
            self._broken = True
            self._sock.close()
        super().close()


def _error_report(exc: BaseException) -> dict[str, str]:
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return {
        "type": name,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "task": str(getattr(exc, "twister2_task", "")),
    }


def main() -> int:
    """Run one worker; the process's exit code."""
    try:
        job_id = os.environ["TWISTER2_JOB_ID"]
        address = parse_address(os.environ["TWISTER2_MASTER_ADDRESS"])
        secret = bytes.fromhex(os.environ["TWISTER2_JOB_SECRET"])
    except (KeyError, ValueError) as exc:
        print(
            f"twister2 worker: missing or bad {exc} in the environment; workers are started "
            "by `twister2 submit`, not by hand",
            file=sys.stderr,
        )
        return 2
    host = socket.gethostname()
    master = MasterClient(address, secret)
    wid: int | None = None
    channel: Channel | None = None
    shipper: _LogShipper | None = None
    try:
        spec = master.request({"op": "spec"})["spec"]
        config = Config.from_dict(spec["config"])
        cluster = str(spec["cluster"])
        _import_channels()
        endpoint = create_endpoint(_channel_scheme(config, cluster), config)
        reply = master.register(requested_id(), host, endpoint.address)
        wid = int(reply["worker_id"])
        logger = _logger(job_id, wid, str(config["logging.level"]))
        master.start_heartbeats(float(config["master.heartbeat_interval"]))
        if int(config["dashboard.log_lines_per_second"]) > 0:
            shipper = _LogShipper(master, int(config["dashboard.log_lines_per_second"]))
            logging.getLogger().addHandler(shipper)
        workers = [WorkerInfo(**w) for w in master.workers(float(config["master.join_timeout"]))]
        channel = endpoint.open(wid, len(workers), [w.address for w in workers], secret)
        scratch = worker_scratch(Path(spec["scratch_root"]), wid)
        sys.argv = [spec["entry"].get("script") or spec["entry"]["function"], *spec["args"]]
        value = master.entry_value() if spec["entry"].get("by_value") else None
        func = load_entry(Entry.from_dict(spec["entry"], value), list(spec["sys_path"]))
        env = WorkerEnv(
            job_id=job_id,
            worker_id=wid,
            num_workers=len(workers),
            config=config,
            comm=channel,
            workers=workers,
            logger=logger,
            scratch_dir=scratch,
            args=list(spec["args"]),
            cluster=cluster,
            master=master,
        )
        result = func(env)
        master.barrier(END_BARRIER, float(config["master.barrier_timeout"]))
        env.close()
        channel.close()
        channel = None
        if shipper is not None:
            shipper.close()
        master.done(result)
    except MasterUnreachable as exc:
        print(f"twister2 worker {wid}: {exc}", file=sys.stderr)
        return 3
    except BaseException as exc:
        if shipper is not None:
            shipper.close()
        try:
            if wid is None:
                master.request(
                    {"op": "register", "requested_id": requested_id(), "host": host, "address": ""}
                )
            master.failed(_error_report(exc))
        except (MasterError, OSError):
            traceback.print_exc()
        return 1
    finally:
        if channel is not None:
            channel.close()
        master.close()
    return 0
