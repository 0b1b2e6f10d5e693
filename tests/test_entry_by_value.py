"""Entry functions that workers cannot import by name travel by value (cloudpickle).

Jobs from ``python -``, ``python -c``, a real Jupyter kernel (nbclient), a lambda, a closure and
a ``functools.partial``, at 1 and 3 workers on the local and mpi clusters; an entry that captures
a lock or a socket is refused before anything starts, naming what could not be pickled.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import twister2
from tests import jobs
from twister2 import WorkerEnv
from twister2.job import Entry
from twister2.master import read_events
from twister2.shipping import EntryNotShippableError

CLUSTERS = ["local", pytest.param("mpi", marks=pytest.mark.mpi)]
SIZES = [1, 3]

# A job as a user types it into `python -`, `python -c` or a notebook cell: the entry function,
# a helper and a constant all live in __main__, which no worker can import.
JOB_SOURCE = """
import json, sys
import twister2

SCALE = 7

def square(x):
    return x * x

def main(env):
    env.barrier("by-value")
    return {"id": env.worker_id, "n": env.num_workers, "value": square(env.worker_id) * SCALE,
            "args": env.args}
"""


def expected(workers: int, args: list[str]) -> list[dict[str, Any]]:
    """The plain-Python oracle for JOB_SOURCE's main."""
    return [{"id": i, "n": workers, "value": i * i * 7, "args": args} for i in range(workers)]


def run_python(
    argv: list[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=150,
        cwd=cwd,
        env={**os.environ},
    )


STDIN_MAIN = """
cluster, workers = sys.argv[1], int(sys.argv[2])
result = twister2.run(main, workers=workers, cluster=cluster)
print(json.dumps(result.values))
"""


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", SIZES)
def test_job_from_stdin(cluster: str, workers: int, tmp_path: Path) -> None:
    proc = run_python(["-", cluster, str(workers)], tmp_path, stdin=JOB_SOURCE + STDIN_MAIN)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected(workers, [cluster, str(workers)])


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", SIZES)
def test_job_from_python_c(cluster: str, workers: int, tmp_path: Path) -> None:
    proc = run_python(["-c", JOB_SOURCE + STDIN_MAIN, cluster, str(workers)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected(workers, [cluster, str(workers)])


def test_unpicklable_entry_from_stdin_fails_at_once(tmp_path: Path, jobs_dir: Path) -> None:
    source = JOB_SOURCE.replace("SCALE = 7", "import threading\nSCALE = 7\nLOCK = threading.Lock()")
    source = source.replace('env.barrier("by-value")', "LOCK.acquire(); LOCK.release()")
    proc = run_python(["-", "local", "2"], tmp_path, stdin=source + STDIN_MAIN)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("twister2.shipping.EntryNotShippableError: the entry function 'main'")
    assert "its global 'LOCK' (a _thread.lock) cannot be pickled" in last
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())  # no job was started


# -- lambdas, closures and partials, from this process ---------------------------------------


def make_closure(base: int) -> Any:
    offsets = {"a": base, "b": base * 2}

    def job(env: WorkerEnv) -> int:
        return offsets["a"] + offsets["b"] + env.worker_id

    return job


def entries() -> list[Any]:
    words = ["zero", "one", "two"]
    return [
        pytest.param(
            lambda env: words[env.worker_id] * 2,
            lambda i: ["zero", "one", "two"][i] * 2,
            id="lambda",
        ),
        pytest.param(make_closure(10), lambda i: 30 + i, id="closure"),
        pytest.param(functools.partial(jobs.scaled_id, factor=5), lambda i: 5 * i, id="partial"),
    ]


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("workers", SIZES)
@pytest.mark.parametrize(("entry", "oracle"), entries())
def test_lambda_closure_and_partial_run_by_value(
    entry: Any, oracle: Any, cluster: str, workers: int, jobs_dir: Path
) -> None:
    result = twister2.run(entry, workers=workers, cluster=cluster)
    assert result.values == [oracle(i) for i in range(workers)]
    started = next(e for e in read_events(jobs_dir / result.job_id) if e["type"] == "job")
    assert started["entry"]["by_value"] is True


def test_importable_function_still_goes_by_reference(jobs_dir: Path) -> None:
    entry = Entry.of(jobs.scaled_id)
    assert (entry.module, entry.function, entry.value) == ("tests.jobs", "scaled_id", None)
    result = twister2.run(jobs.scaled_id, workers=2)
    assert result.values == [0, 1]
    started = next(e for e in read_events(jobs_dir / result.job_id) if e["type"] == "job")
    assert started["entry"] == {
        "function": "scaled_id",
        "module": "tests.jobs",
        "script": None,
        "by_value": False,
    }


# -- what cannot be shipped is refused before anything starts --------------------------------


def test_entry_capturing_a_lock_is_refused_before_the_job_starts(jobs_dir: Path) -> None:
    lock = threading.Lock()

    def main(env: WorkerEnv) -> int:
        with lock:
            return env.worker_id

    with pytest.raises(EntryNotShippableError) as info:
        twister2.run(main, workers=3)
    text = str(info.value)
    assert text.startswith("the entry function ")
    assert "its closure variable 'lock' (a _thread.lock) cannot be pickled" in text
    assert "Create it inside the function" in text
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())  # no job master, no worker


def test_partial_with_an_open_socket_is_refused(jobs_dir: Path) -> None:
    with socket.socket() as sock:
        entry = functools.partial(jobs.scaled_id, factor=sock)
        with pytest.raises(EntryNotShippableError) as info:
            twister2.run(entry, workers=1, cluster="local")
    text = str(info.value)
    assert "the entry function 'partial(scaled_id)'" in text
    assert "its partial argument 'factor' (a socket.socket) cannot be pickled" in text
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())


def test_culprit_nested_inside_a_captured_object_is_named() -> None:
    state = {"rows": [1, 2], "guard": threading.RLock()}
    with pytest.raises(
        EntryNotShippableError, match=r"closure variable 'state'\['guard'\] \(a _thread.RLock\)"
    ):
        Entry.of(lambda env: (state["rows"], env))


def test_a_non_callable_entry_is_refused() -> None:
    with pytest.raises(TypeError, match="must be callable, got int"):
        twister2.run(42, workers=1)  # type: ignore[arg-type]


# -- a real Jupyter kernel -------------------------------------------------------------------


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that starts ipykernel with this test's Python; Jupyter's state in tmp_path."""
    name = "twister2-test"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": name, "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return name


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_job_from_a_notebook_kernel(cluster: str, kernel_name: str, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    run_cell = "\n".join(
        [
            "results = {}",
            f"for workers in {SIZES}:",
            f"    result = twister2.run(main, workers=workers, cluster={cluster!r})",
            "    results[workers] = result.values",
            "print(json.dumps(results))",
        ]
    )
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(JOB_SOURCE), nbformat.v4.new_code_cell(run_cell)]
    client = nbclient.NotebookClient(
        notebook,
        timeout=150,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = notebook.cells[1].outputs
    text = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    # a notebook has no script arguments: env.args is empty, not the kernel's own command line
    assert json.loads(text) == {str(w): expected(w, []) for w in SIZES}
