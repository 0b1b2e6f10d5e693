"""The ``twister2`` command: ``submit``, ``jobs``, ``kill``, ``token`` and ``dashboard``.

Every option can also come from an environment variable, shown in ``--help``.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import json
import logging
import runpy
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from twister2 import config as config_mod
from twister2.dashboard import Dashboard, JobNotRunning, SubmitProgress, job_kill_token
from twister2.errors import JobFailedError, JobKilledError, JobStartError
from twister2.master.client import MasterClient, MasterError
from twister2.master.events import MASTER_FILE, list_jobs, summarize
from twister2.resource import PlacementError, available_launchers
from twister2.submit import submission

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_KILLED = 130


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"twister2: error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="twister2")
def cli() -> None:
    """Twister2 for Python: run batch, streaming and iterative jobs on a cluster."""


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("cluster", envvar="TWISTER2_SUBMIT_CLUSTER")
@click.argument("script", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--workers",
    "-n",
    type=click.IntRange(min=1),
    envvar="TWISTER2_SUBMIT_WORKERS",
    show_envvar=True,
    help="Number of workers (default: what the script asks for).",
)
@click.option(
    "--config",
    "-c",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    envvar="TWISTER2_SUBMIT_CONFIG",
    show_envvar=True,
    help="Set a config key for this job (repeatable), e.g. master.failure_timeout=5.",
)
@click.option(
    "--timeout",
    "-t",
    type=float,
    metavar="SECONDS",
    envvar="TWISTER2_SUBMIT_TIMEOUT",
    show_envvar=True,
    help="Kill the job (state KILLED) if it runs longer than this (default: job.timeout).",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    envvar="TWISTER2_SUBMIT_QUIET",
    show_envvar=True,
    help="Do not print the job's id and end.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    envvar="TWISTER2_SUBMIT_PROGRESS",
    show_envvar=True,
    help="Show progress bars while the job runs (default: when stderr is a terminal).",
)
def submit(
    cluster: str,
    script: Path,
    script_args: tuple[str, ...],
    workers: int | None,
    assignments: tuple[str, ...],
    timeout: float | None,
    quiet: bool,
    progress: bool | None,
) -> None:
    """Run SCRIPT's job on CLUSTER (local, mpi, ...); arguments after -- go to the script.

    The script calls ``twister2.run(main, ...)``; the cluster, --workers and --config given
    here take precedence over what it asks for.
    """
    if cluster not in available_launchers():
        close = difflib.get_close_matches(cluster, available_launchers(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail(f"unknown cluster {cluster!r}{hint}; known: {', '.join(available_launchers())}")
    if not script.is_file():
        _fail(f"script {str(script)!r} does not exist (give the path of a .py file)")
    overrides: dict[str, Any] = {}
    try:
        for text in assignments:
            key, value = config_mod.parse_assignment(text)
            overrides[key] = value
        if timeout is not None:
            overrides["job.timeout"] = timeout
        log_dir = Path(config_mod.resolve(cluster, overrides)["job.log_dir"])
    except config_mod.ConfigError as exc:
        _fail(str(exc))
    if not quiet:
        logging.basicConfig(format="twister2: %(message)s", level=logging.WARNING)
        logging.getLogger("twister2.submit").setLevel(logging.INFO)
    sys.argv = [str(script), *script_args]
    sys.path.insert(0, str(script.resolve().parent))
    follow = contextlib.nullcontext() if quiet else _progress(log_dir, progress)
    try:
        with follow, submission(cluster, workers, overrides, list(script_args)) as sub:
            runpy.run_path(str(script), run_name="__main__")
    except JobFailedError as exc:
        _fail(str(exc), EXIT_FAILED)
    except JobKilledError as exc:
        _fail(str(exc), EXIT_KILLED)
    except (PlacementError, config_mod.ConfigError, JobStartError) as exc:
        _fail(str(exc))
    if not sub.used:
        _fail(
            f"{script} did not call twister2.run(main, ...): a job script runs its entry function "
            'with twister2.run under `if __name__ == "__main__":`'
        )


def _progress(log_dir: Path, bars: bool | None) -> SubmitProgress:
    """The dashboard's URL and, on a terminal (or with --progress), progress bars."""
    return SubmitProgress(log_dir, bars=SubmitProgress.wanted(bars, sys.stderr))


def _log_dir(log_dir: Path | None) -> Path:
    folder = log_dir or Path(config_mod.resolve()["job.log_dir"])
    if folder.exists() and not folder.is_dir():
        _fail(f"the job log folder {folder} is a file, not a directory (job.log_dir, --log-dir)")
    return folder


_LOG_DIR = click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TWISTER2_JOBS_LOG_DIR",
    show_envvar=True,
    help="Where job event logs are (default: the config's job.log_dir).",
)


@cli.command()
@_LOG_DIR
@click.option(
    "--state",
    "states",
    multiple=True,
    envvar="TWISTER2_JOBS_STATE",
    show_envvar=True,
    help="Only jobs in this state (repeatable).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar="TWISTER2_JOBS_JSON",
    show_envvar=True,
    help="Print JSON instead of a table.",
)
def jobs(log_dir: Path | None, states: tuple[str, ...], as_json: bool) -> None:
    """List jobs, newest first, from their event logs."""
    folder = _log_dir(log_dir)
    found = list_jobs(folder)
    wanted = {s.upper() for s in states}
    found = [j for j in found if not wanted or j.state in wanted]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "job_id": j.job_id,
                        "name": j.name,
                        "state": j.state,
                        "cluster": j.cluster,
                        "workers": j.workers,
                        "start": j.start,
                        "duration": j.duration,
                        "error": j.error,
                    }
                    for j in found
                ],
                indent=2,
            )
        )
        return
    if not found:
        click.echo(f"no jobs in {folder}")
        return
    rows = [("JOB ID", "STATE", "CLUSTER", "WORKERS", "STARTED", "DURATION")]
    for j in found:
        started = (
            datetime.datetime.fromtimestamp(j.start).strftime("%Y-%m-%d %H:%M:%S")
            if j.start
            else "-"
        )
        duration = f"{j.duration:.1f}s" if j.duration is not None else "-"
        rows.append((j.job_id, j.state, j.cluster, str(j.workers), started, duration))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@cli.command()
@click.argument("job_id")
@_LOG_DIR
def kill(job_id: str, log_dir: Path | None) -> None:
    """Kill the running job JOB_ID."""
    folder = _log_dir(log_dir)
    job_folder = folder / job_id
    if not job_folder.is_dir():
        known = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        close = difflib.get_close_matches(job_id, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (see `twister2 jobs`)"
        _fail(f"no job {job_id!r} in {folder}{hint}", EXIT_FAILED)
    master_file = job_folder / MASTER_FILE
    try:
        info = json.loads(master_file.read_text())
        client = MasterClient(
            (info["host"], int(info["port"])), bytes.fromhex(info["secret"]), timeout=5.0
        )
    except (OSError, ValueError, KeyError, MasterError):
        state = summarize(job_folder).state
        _fail(f"job {job_id} is not running (state {state})", EXIT_FAILED)
    try:
        client.request({"op": "kill", "reason": "killed by `twister2 kill`"})
    finally:
        client.close()
    click.echo(f"killed {job_id}")


@cli.command()
@click.argument("job_id")
@_LOG_DIR
def token(job_id: str, log_dir: Path | None) -> None:
    """Print the kill token of the running job JOB_ID (the dashboard asks for it)."""
    folder = _log_dir(log_dir)
    if not (folder / job_id).is_dir():
        _fail(f"no job {job_id!r} in {folder} (see `twister2 jobs`)", EXIT_FAILED)
    try:
        click.echo(job_kill_token(folder / job_id))
    except JobNotRunning as exc:
        _fail(str(exc), EXIT_FAILED)


@cli.command()
@click.option(
    "--port",
    "-p",
    type=click.IntRange(0, 65535),
    envvar="TWISTER2_DASHBOARD_PORT",
    show_envvar=True,
    help="Port to listen on, 0 for any free one (default: the config's dashboard.port).",
)
@click.option(
    "--host",
    envvar="TWISTER2_DASHBOARD_HOST",
    show_envvar=True,
    help="Address to bind (default: the config's dashboard.interface, loopback).",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TWISTER2_DASHBOARD_LOG_DIR",
    show_envvar=True,
    help="Where job event logs are (default: the config's job.log_dir).",
)
def dashboard(port: int | None, host: str | None, log_dir: Path | None) -> None:
    """Serve the web dashboard of the jobs (live and finished) until Ctrl-C."""
    cfg = config_mod.resolve()
    folder = log_dir or Path(cfg["job.log_dir"])
    host = host or str(cfg["dashboard.interface"])
    port = int(cfg["dashboard.port"]) if port is None else port
    try:
        server = Dashboard(
            folder, host=host, port=port, straggler_factor=float(cfg["dashboard.straggler_factor"])
        )
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (try --port 0)")
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        click.echo(f"twister2 dashboard of {folder} at {server.url} (Ctrl-C to stop)")
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> None:
    """Entry point of the ``twister2`` command: a configuration or start-up problem is one
    ``twister2: error:`` line, never a traceback."""
    try:
        cli()
    except (config_mod.ConfigError, JobStartError) as exc:
        _fail(str(exc))


if __name__ == "__main__":
    main()
