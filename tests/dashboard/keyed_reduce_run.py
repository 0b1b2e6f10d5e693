"""The keyed_reduce comms example run as a user runs it (``twister2 submit local``), with what
its ``operation`` events must add up to, computed here without twister2: an independent oracle.

The example's data is a function of (seed, iteration, source) alone (examples/comms/
comms_example.py: ``keyed``). Each worker combines the pairs of its sources by key before
sending, and each key goes to one target, so in one iteration a worker sends one value per
distinct key among its sources' pairs (one batch per destination worker: the keys per worker
stay far below ``net.batch_records``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.run_examples import ROOT, submit_script

SCRIPT = ROOT / "examples" / "comms" / "keyed_reduce.py"
SEED = 2018  # comms_example.SEED
ITERATIONS, RECORDS, SIZE = 3, 16, 50
ARGS = ("--itr", str(ITERATIONS), "--records", str(RECORDS), "--size", str(SIZE))


@dataclass
class KeyedReduceRun:
    job_id: str
    workers: int
    reports: list[dict[str, Any]]
    """The job's ``operation`` events, read straight from its events.jsonl."""

    def expected_values(self) -> int:
        """What the example sends over all workers and iterations (plain Python and NumPy)."""
        sources, targets = self.workers + 1, max(1, self.workers - 1)  # the example's defaults
        total = 0
        for itr in range(ITERATIONS):
            for worker in range(self.workers):
                keys: set[int] = set()
                for source in range(worker, sources, self.workers):  # dealt round robin
                    rng = np.random.default_rng([SEED, 0, itr, source, 1])
                    keys |= {int(k) for k in rng.integers(0, 4 * targets, size=RECORDS)}
                total += len(keys)
        return total


def run_keyed_reduce(workers: int, jobs_dir: Path) -> KeyedReduceRun:
    """Submit the example and read its operation reports."""
    jobs_dir.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in jobs_dir.iterdir()}
    done = submit_script("local", SCRIPT, workers, *ARGS)
    assert done.returncode == 0, done.stdout + done.stderr
    (job_id,) = {p.name for p in jobs_dir.iterdir() if p.is_dir()} - before
    lines = (jobs_dir / job_id / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    reports = [e for e in events if e["type"] == "operation"]
    return KeyedReduceRun(job_id, workers, reports)


def check_reports(run: KeyedReduceRun) -> None:
    """The events themselves agree with the oracle: one report per worker and iteration."""
    assert len(run.reports) == ITERATIONS * run.workers, run.reports
    assert {e["op"] for e in run.reports} == {"keyed_reduce"}
    assert {e["worker_id"] for e in run.reports} == set(range(run.workers))
    assert sum(e["values"] for e in run.reports) == run.expected_values()
    # every report carries arrays of SIZE int64 (at least one array per report)
    assert all(e["bytes"] >= SIZE * 8 and e["seconds"] >= 0 for e in run.reports)
