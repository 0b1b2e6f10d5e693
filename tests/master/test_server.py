"""The job master's server over real sockets: handshake, registration, barriers."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from twister2 import wire
from twister2.job import JobState
from twister2.master import BarrierError, JobMaster, MasterClient, read_events
from twister2.master.events import MASTER_FILE


@pytest.fixture
def master(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = JobMaster("job-1", 2, wire.new_secret(), {"hello": 1}, tmp_path / "job-1")
    m.start()
    yield m
    m.stop()


def test_wrong_secret_is_refused_and_logged(
    master: JobMaster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="twister2.master.server")
    with pytest.raises(wire.AuthenticationError):
        MasterClient(master.address, b"not the secret" * 3, timeout=5.0)
    for _ in range(50):
        if "refused connection" in caplog.text:
            break
        threading.Event().wait(0.05)
    assert "refused connection" in caplog.text
    assert master.record.members == {}


def test_master_file_is_private(master: JobMaster) -> None:
    path = master.events.folder / MASTER_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["port"] == master.address[1]


def test_register_discover_barrier_and_complete(master: JobMaster) -> None:
    clients = [MasterClient(master.address, master.secret) for _ in range(2)]
    try:
        ids = [c.register(None, "hostA", f"addr{i}")["worker_id"] for i, c in enumerate(clients)]
        assert sorted(ids) == [0, 1]
        assert clients[0].request({"op": "spec"})["spec"] == {"hello": 1}
        workers = clients[1].workers(timeout=5.0)
        assert [w["address"] for w in workers] == ["addr0", "addr1"]
        with pytest.raises(BarrierError, match=r"timed out after 0.2 s: workers \[1\]"):
            clients[0].barrier("alone", 0.2)
        done = []
        t = threading.Thread(target=lambda: done.append(clients[0].barrier("both", 5.0)))
        t.start()
        clients[1].barrier("both", 5.0)
        t.join(5.0)
        assert done == [None]
        clients[0].done(1)
        clients[1].done(2)
        assert master.state is JobState.COMPLETED
    finally:
        for c in clients:
            c.close()
    master.stop()
    states = [e.get("state") for e in read_events(master.events.folder) if e["type"] == "job"]
    assert states[-1] == "COMPLETED"


def test_kill_request(master: JobMaster) -> None:
    client = MasterClient(master.address, master.secret)
    try:
        assert client.request({"op": "kill", "reason": "test"})["ok"]
    finally:
        client.close()
    assert master.state is JobState.KILLED


def test_workers_log_events_but_not_states(master: JobMaster) -> None:
    client = MasterClient(master.address, master.secret)
    try:
        client.register(None, "h", "")
        client.event("operation", op="reduce", nbytes=10)
        with pytest.raises(Exception, match="cannot log 'job' events"):
            client.event("job", state="COMPLETED")
    finally:
        client.close()
    master.stop()
    ops = [e for e in read_events(master.events.folder) if e["type"] == "operation"]
    assert ops and ops[0]["op"] == "reduce" and ops[0]["worker_id"] == 0
    assert master.state is not JobState.COMPLETED
