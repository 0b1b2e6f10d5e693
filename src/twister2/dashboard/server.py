"""The dashboard's web server: a few pages, their static assets and a JSON API, nothing else.

It is a history server: every answer is read from the event logs under the log dir, so live and
finished jobs show alike and the dashboard can start and stop at any time. Only the routes below
are served; a path is matched segment by segment against them, never mapped onto the file
system, so no request reaches a file outside the packaged assets.

=======  ==============================  ==================================================
method   route                           what
=======  ==============================  ==================================================
GET      ``/``                           the jobs page
GET      ``/jobs/<id>``                  a job's page
GET      ``/static/<name>``              a packaged asset (HTML, CSS, JS, SVG)
GET      ``/api/jobs[?state=S]``         every job, newest first (``state`` repeatable)
GET      ``/api/jobs/<id>``              one job: workers, graph, tasks, failure, warnings
POST     ``/api/jobs/<id>/kill``         kill a running job; needs its token (403 without)
=======  ==============================  ==================================================

Example
-------
>>> import json, tempfile, urllib.request
>>> with Dashboard(Path(tempfile.mkdtemp()), port=0) as dash:
...     with urllib.request.urlopen(dash.url + "/api/jobs") as reply:
...         json.loads(reply.read())["jobs"]
[]
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import logging
import os
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psutil

from twister2.dashboard.auth import JobNotRunning, check_kill_token, read_master_file
from twister2.dashboard.history import History, valid_job_id
from twister2.master.client import MasterClient, MasterError

__all__ = ["DASHBOARD_FILE", "Dashboard", "find_dashboard"]

log = logging.getLogger(__name__)

DASHBOARD_FILE = "dashboard.json"
"""Written into the log dir while a dashboard runs: its URL and process id."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_MAX_BODY = 4096


def _load_assets() -> dict[str, bytes]:
    folder = importlib.resources.files("twister2.dashboard") / "static"
    return {
        item.name: item.read_bytes()
        for item in folder.iterdir()
        if item.is_file() and os.path.splitext(item.name)[1] in _TYPES
    }


def _segments(path: str) -> list[str] | None:
    """The decoded segments of a request path, or None when one could escape a route.

    >>> _segments("/api/jobs/a-1"), _segments("/static/%2e%2e/x"), _segments("/a//b")
    (['api', 'jobs', 'a-1'], None, None)
    """
    if not path.startswith("/"):
        return None
    raw = path[1:].split("/")
    if len(raw) > 1 and raw[-1] == "":
        raw.pop()  # a trailing slash
    if raw == [""]:
        return []
    found = []
    for piece in raw:
        try:
            text = unquote(piece, errors="strict")
        except UnicodeDecodeError:
            return None
        if text in ("", ".", "..") or any(c in text for c in "/\\\x00") or "%" in text:
            return None
        found.append(text)
    return found


def find_dashboard(log_dir: Path) -> dict[str, Any] | None:
    """The dashboard serving ``log_dir`` (its ``url`` and ``pid``), or None if none runs.

    >>> import tempfile
    >>> find_dashboard(Path(tempfile.mkdtemp())) is None
    True
    """
    try:
        info = json.loads((log_dir / DASHBOARD_FILE).read_text(encoding="utf-8"))
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not psutil.pid_exists(pid):
        return None
    return {"url": url, "pid": pid}


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the request threads: nothing outlives stop()
    block_on_close = True
    dashboard: Dashboard

    def server_activate(self) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().server_activate()

    def close_connections(self) -> None:
        """End the connections still open (a browser's idle, pre-opened ones), so that the
        threads serving them end now rather than at their socket timeout."""
        with self.connections_lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class _Server6(_Server):
    address_family = socket.AF_INET6


class Dashboard:
    """The dashboard over the jobs under ``log_dir``.

    ``start()`` serves from a background thread and writes ``dashboard.json`` into the log dir
    (so ``twister2 submit`` can print the URL); ``stop()`` ends every thread, closes the socket
    and removes the file. Also a context manager.

    Parameters
    ----------
    log_dir
        The folder holding one folder per job (the config's ``job.log_dir``).
    host, port
        Where to listen; port 0 takes any free port (``url`` says which). On a loopback
        address only requests naming a loopback host are answered.
    straggler_factor
        A task instance busy longer than this times its task's median is a straggler.

    Raises
    ------
    OSError
        When ``host:port`` cannot be bound (in use, or not an address of this machine).
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        straggler_factor: float = 1.5,
    ) -> None:
        self.log_dir = log_dir
        self.history = History(log_dir, straggler_factor=straggler_factor)
        self.assets = _load_assets()
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.dashboard = self
        self.host = host
        self.port = int(self._server.server_address[1])
        self._loopback = host in _LOOPBACK or host.startswith("127.")
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> Dashboard:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="twister2-dashboard",
            daemon=True,
        )
        self._thread.start()
        self._write_info()
        log.info("dashboard of %s at %s", self.log_dir, self.url)
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._remove_info()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10.0)
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_info(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        info = {"url": self.url, "pid": os.getpid(), "started": time.time()}
        tmp = self.log_dir / f".{DASHBOARD_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, self.log_dir / DASHBOARD_FILE)

    def _remove_info(self) -> None:
        path = self.log_dir / DASHBOARD_FILE
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            info = json.loads(path.read_text(encoding="utf-8"))
            if int(info["pid"]) == os.getpid() and info["url"] == self.url:
                path.unlink()

    def host_allowed(self, header: str | None) -> bool:
        """On loopback, only requests that name a loopback host (no DNS rebinding)."""
        if not self._loopback:
            return True
        if not header:
            return False
        name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
        return name.strip("[]").lower() in _LOOPBACK

    def kill(self, job_id: str, token: str) -> tuple[int, dict[str, Any]]:
        """Kill a running job if ``token`` is its kill token.

        Returns
        -------
        tuple of (int, dict)
            The HTTP status and the JSON reply: 200 killed, 403 no or wrong token, 404 no such
            job, 409 the job is not running.
        """
        folder = self.log_dir / job_id
        how = f"get it with `twister2 token {job_id}` as the user who ran the job"
        if self.history.job(job_id) is None:
            return 404, {"error": f"no job {job_id!r} in {self.log_dir}"}
        if not token:
            return 403, {"error": f"killing a job needs its token; {how}"}
        try:
            info = read_master_file(folder)
        except JobNotRunning as exc:
            return 409, {"error": str(exc)}
        if not check_kill_token(info["secret"], token):
            return 403, {"error": f"wrong token for job {job_id}; {how}"}
        try:
            client = MasterClient((info["host"], info["port"]), info["secret"], timeout=5.0)
            try:
                client.request({"op": "kill", "reason": "killed from the dashboard"})
            finally:
                client.close()
        except (OSError, MasterError) as exc:
            return 409, {"error": f"job {job_id} is not running ({exc})"}
        log.warning("dashboard: killed job %s", job_id)
        return 200, {"ok": True, "job_id": job_id}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "twister2-dashboard"
    sys_version = ""
    timeout = 10.0

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard %s: " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _not_allowed(self) -> None:
        self._json(405, {"error": f"method {self.command} is not allowed"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    # -- routing -------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        dash = self.server.dashboard
        if not dash.host_allowed(self.headers.get("Host")):
            self._json(403, {"error": "this dashboard answers requests for localhost only"})
            return
        url = urlsplit(self.path)
        parts = _segments(url.path)
        if parts is None:
            self._json(404, {"error": "no such page"})
            return
        reading = method in ("GET", "HEAD")
        match parts:
            case [] if reading:
                self._asset("index.html")
            case ["jobs", job_id] if reading and valid_job_id(job_id):
                self._asset("job.html")
            case ["static", name] if reading and name in dash.assets:
                self._asset(name)
            case ["api", "jobs"] if reading:
                query = parse_qs(url.query)
                states = [s for text in query.get("state", []) for s in text.split(",") if s]
                self._json(
                    200,
                    {
                        "now": time.time(),
                        "log_dir": str(dash.log_dir),
                        "jobs": dash.history.jobs(states),
                    },
                )
            case ["api", "jobs", job_id] if reading:
                detail = dash.history.job(job_id)
                if detail is None:
                    self._json(404, {"error": f"no job {job_id!r} in {dash.log_dir}"})
                else:
                    self._json(200, detail)
            case ["api", "jobs", job_id, "kill"] if method == "POST":
                status, reply = dash.kill(job_id, self._token())
                self._json(status, reply)
            case ["api", "jobs"] | ["api", "jobs", _] | ["api", "jobs", _, "kill"]:
                self._not_allowed()
            case _:
                self._json(404, {"error": "no such page"})

    def _token(self) -> str:
        header = self.headers.get("X-Twister2-Token")
        if header:
            return header
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return ""
        if not 0 < length <= _MAX_BODY:
            return ""
        body = self.rfile.read(length)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return ""
        token = data.get("token") if isinstance(data, dict) else None
        return token if isinstance(token, str) else ""

    # -- answers -------------------------------------------------------------------------------
    def _asset(self, name: str) -> None:
        body = self.server.dashboard.assets[name]
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _TYPES[os.path.splitext(name)[1]])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        if name.endswith(".html"):
            self.send_header("Content-Security-Policy", _PAGE_POLICY)
            self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data, default=str, allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
