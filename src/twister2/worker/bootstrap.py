"""A worker process: join the job, open the channel, run the entry function, report the end.

Launchers start ``python -m twister2.worker`` with the job's id, the job master's address and the
job's secret in the environment (``TWISTER2_JOB_ID``, ``TWISTER2_MASTER_ADDRESS``,
``TWISTER2_JOB_SECRET``) and, optionally, the id the worker should take
(``TWISTER2_WORKER_INDEX``; under mpiexec the MPI rank).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twister2.config import Config
from twister2.job import Entry
from twister2.master.client import MasterClient, MasterError, MasterUnreachable, parse_address
from twister2.master.record import END_BARRIER
from twister2.net.channel import Channel, create_endpoint
from twister2.scratch import worker_scratch
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
    """Import the entry function the way the submitting process found it."""
    for path in reversed(sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
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

    Lines go in one batch a second, at most ``rate`` of them: a chatty worker cannot flood the
    master; the lines past that are counted in the next batch's ``dropped``. ``close`` sends
    what is left (call it before reporting the worker's end).
    """

    MAX_MESSAGE = 4000

    def __init__(self, master: MasterClient, rate: int, interval: float = 1.0) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._master = master
        self._rate = rate
        self._interval = interval
        self._pending: list[dict[str, Any]] = []
        self._dropped = 0
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twister2-log-shipper", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is self._thread:
            return
        try:
            message = self.format(record)[: self.MAX_MESSAGE]
        except Exception:
            self.handleError(record)
            return
        line = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        with self._guard:
            if len(self._pending) < self._rate:
                self._pending.append(line)
            else:
                self._dropped += 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._send()

    def _send(self) -> None:
        with self._guard:
            lines, self._pending = self._pending, []
            dropped, self._dropped = self._dropped, 0
        if not lines and not dropped:
            return
        try:
            self._master.event("log", lines=lines, dropped=dropped)
        except MasterError:
            self._stop.set()

    def close(self) -> None:
        logging.getLogger().removeHandler(self)
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=5.0)
            self._send()
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
        func = load_entry(Entry.from_dict(spec["entry"]), list(spec["sys_path"]))
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
