"""Run every runtime benchmark and write their tables into ``docs/benchmarks.md``.

Each benchmark runs in its own process (``startup.py``, ``channel.py``, ``idle_cpu.py``). The
section between ``<!-- runtime-benchmarks:start -->`` and ``<!-- runtime-benchmarks:end -->``
is replaced (or appended when missing), under a heading with the date, the machine and the
command used; the rest of the file is left as it is.

    python benchmarks/run_all.py            # default sizes, about 2 minutes on 2 cores
    python benchmarks/run_all.py --quick    # a smoke test; --no-write leaves the docs alone
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
START = "<!-- runtime-benchmarks:start -->"
END = "<!-- runtime-benchmarks:end -->"
BENCHMARKS = ("startup.py", "channel.py", "idle_cpu.py")


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def mpi_version() -> str:
    from twister2.resource.mpi import find_mpiexec

    try:
        out = subprocess.run(
            [find_mpiexec(), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        return f"unknown ({exc})"
    for line in out.splitlines():
        if line.strip().startswith("Version:"):
            return "MPICH (hydra) " + line.partition(":")[2].strip()
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, {cpu_model()}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {mpi_version()}"
    )


def command_line() -> str:
    """This run's command, with paths relative to the working directory where they can be."""

    def relative(path: Path) -> str:
        cwd = Path.cwd()
        return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)

    # sys.executable unresolved: a virtualenv's python is a link to the base interpreter
    python = Path(sys.executable)
    return shlex.join([relative(python), relative(Path(sys.argv[0]).resolve()), *sys.argv[1:]])


def run_benchmark(name: str, quick: bool) -> tuple[str, float]:
    """Run one benchmark script; its Markdown report (or a failure note) and its wall time."""
    with tempfile.TemporaryDirectory(prefix="twister2-bench-") as tmp:
        out = Path(tmp) / "report.md"
        command = [sys.executable, str(HERE / name), "--out", str(out)]
        if quick:
            command.append("--quick")
        print(f"run_all: {shlex.join(command)}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        code = subprocess.run(command, cwd=ROOT, stdout=sys.stderr).returncode
        elapsed = time.perf_counter() - start
        if code != 0 or not out.exists():
            return f"### {name}\n\n**FAILED** with exit code {code}; no table.", elapsed
        return out.read_text(encoding="utf-8").rstrip("\n"), elapsed


def section(
    reports: list[str], stamp: str, host: str, command: str, took: float, loads: tuple[str, str]
) -> str:
    return "\n".join(
        [
            START,
            f"## Runtime benchmarks ({stamp})",
            "",
            f"- Machine: {host}",
            f"- Command: `{command}` (from the repository root), {took:.0f} s in all",
            f"- Load average (1/5/15 min; other work shares this machine): {loads[0]} at the "
            f"start, {loads[1]} at the end",
            "- Numbers are measured by the scripts in `benchmarks/` and written by `run_all.py`; "
            "do not edit them by hand. Each script runs alone too (`--quick` for a smoke test).",
            "",
            "\n\n".join(reports),
            END,
        ]
    )


def write_doc(text: str, path: Path = DOC) -> None:
    """Put ``text`` (a whole marked section) in ``path``, replacing the old section if any."""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        start, end = old.find(START), old.find(END)
        if start != -1 and end > start:
            new = old[:start] + text + old[end + len(END) :]
        else:
            new = old.rstrip("\n") + "\n\n" + text + "\n"
    else:
        new = "# Benchmarks\n\n" + text + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark at tiny sizes")
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")
    args = parser.parse_args(argv)
    host = machine()
    load_before = load_average()
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    reports, failed, took = [], False, 0.0
    for name in BENCHMARKS:
        report, elapsed = run_benchmark(name, args.quick)
        failed = failed or "**FAILED**" in report
        reports.append(report)
        took += elapsed
    loads = (load_before, load_average())
    text = section(reports, stamp, host, command_line(), took, loads)
    print(text)
    if not args.no_write:
        write_doc(text)
        print(f"run_all: wrote {DOC}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
