"""The kill token of a running job: what the dashboard asks for before it kills a job.

The token is derived from the job's secret (``master.json`` in the job's log folder, readable by
its owner only), so whoever can read that file can get it (``twister2 token <job-id>``) and nobody
else can, while the secret itself never leaves the machine.

Example
-------
>>> kill_token(bytes(32))[:16]
'951f18592c0de973'
>>> check_kill_token(bytes(32), kill_token(bytes(32))), check_kill_token(bytes(32), "x")
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from twister2.master.events import MASTER_FILE

__all__ = ["JobNotRunning", "check_kill_token", "job_kill_token", "kill_token", "read_master_file"]

_PURPOSE = b"twister2 dashboard: kill"


class JobNotRunning(RuntimeError):
    """The job has no running job master (it ended, or it never started here)."""


def kill_token(secret: bytes) -> str:
    """The job's kill token: HMAC-SHA256 of a fixed purpose string under the job's secret.

    Parameters
    ----------
    secret
        The job's secret (``master.json``'s ``secret``, from hex).

    Returns
    -------
    str
        64 hex digits; it reveals nothing of the secret.
    """
    return hmac.new(secret, _PURPOSE, hashlib.sha256).hexdigest()


def check_kill_token(secret: bytes, token: str) -> bool:
    """Whether ``token`` is the job's kill token (compared in constant time)."""
    return hmac.compare_digest(
        kill_token(secret).encode(), token.strip().encode("utf-8", "replace")
    )


def read_master_file(job_folder: Path) -> dict[str, Any]:
    """The running job master's address and secret, from ``<job_folder>/master.json``.

    Raises :class:`JobNotRunning` when the file is gone (the master removes it when the job
    ends) or unreadable.
    """
    path = job_folder / MASTER_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return {
            "host": str(info["host"]),
            "port": int(info["port"]),
            "pid": int(info.get("pid", 0)),
            "secret": bytes.fromhex(info["secret"]),
        }
    except FileNotFoundError as exc:
        msg = f"job {job_folder.name} is not running (its job master has ended)"
        raise JobNotRunning(msg) from exc
    except PermissionError as exc:
        msg = f"cannot read {path}: only the user who ran the job can ({exc.strerror})"
        raise JobNotRunning(msg) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise JobNotRunning(msg) from exc


def job_kill_token(job_folder: Path) -> str:
    """The kill token of the running job whose log folder is ``job_folder``.

    Raises
    ------
    JobNotRunning
        When the job is not running (its ``master.json`` is gone) or the file is unreadable.

    Examples
    --------
    >>> import tempfile
    >>> job_kill_token(Path(tempfile.mkdtemp()) / "done-job")
    Traceback (most recent call last):
    ...
    twister2.dashboard.auth.JobNotRunning: job done-job is not running (its job master has ended)
    """
    return kill_token(read_master_file(job_folder)["secret"])
