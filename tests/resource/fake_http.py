"""What the FAKE API servers of the tests share: a threaded JSON HTTP server, and tasks run as
local processes (their stand-in for a cluster's agents)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any, dict[str, str]]
"""HTTP status, JSON body (None: empty), extra headers."""


class JsonServer:
    """Serves ``handle(method, path, headers, body) -> Answer`` on 127.0.0.1 (HTTP/1.0)."""

    def __init__(self, handle: Callable[[str, str, dict[str, str], Any], Answer]) -> None:
        self.handle = handle
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                code, answer, extra = outer.handle(self.command, self.path, headers, body)
                if callable(answer):  # a stream: the callable writes it, then the connection ends
                    self.send_response(code)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    answer(self.wfile)
                    return
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-http")
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class LocalTasks:
    """Tasks as local processes, each its own process group: started with an exact environment,
    ended (the whole group) with SIGTERM, then SIGKILL."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, key: str, command: list[str], env: dict[str, str]) -> None:
        self.procs[key] = subprocess.Popen(command, env=env, start_new_session=True)

    def exit_code(self, key: str) -> int | None:
        proc = self.procs.get(key)
        return None if proc is None else proc.poll()

    def stop(self, key: str, grace: float) -> int | None:
        proc = self.procs.get(key)
        if proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()

    def stop_all(self) -> None:
        for key in list(self.procs):
            self.stop(key, 1.0)
