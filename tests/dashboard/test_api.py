"""The dashboard's JSON API and routes, against real jobs run by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import twister2
from tests.dashboard import dash_jobs
from tests.dashboard.conftest import (
    FAST,
    background_job,
    get_json,
    request,
    wait_until,
)
from tests.dashboard.keyed_reduce_run import ITERATIONS, check_reports, run_keyed_reduce
from twister2 import JobFailedError, JobKilledError
from twister2.dashboard import DASHBOARD_FILE, Dashboard, find_dashboard, job_kill_token

ROOT = Path(__file__).resolve().parents[2]


def test_no_jobs_is_an_empty_friendly_page(dashboard: Dashboard, jobs_dir: Path) -> None:
    listed = get_json(dashboard, "/api/jobs")
    assert listed["jobs"] == []
    assert listed["log_dir"] == str(jobs_dir)
    page = request(dashboard.url, "/")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert b"No jobs yet" in page.body


def test_dashboard_file_announces_the_url_while_it_runs(jobs_dir: Path) -> None:
    assert find_dashboard(jobs_dir) is None
    with Dashboard(jobs_dir, port=0) as dash:
        info = json.loads((jobs_dir / DASHBOARD_FILE).read_text())
        assert info == {"url": dash.url, "pid": os.getpid(), "started": info["started"]}
        assert find_dashboard(jobs_dir) == {"url": dash.url, "pid": os.getpid()}
        assert dash.url.startswith("http://127.0.0.1:")
    assert not (jobs_dir / DASHBOARD_FILE).exists()
    (jobs_dir / DASHBOARD_FILE).write_text(json.dumps({"url": "http://x:1", "pid": 2**22 + 7}))
    assert find_dashboard(jobs_dir) is None  # a dead process's file is ignored


@pytest.mark.parametrize("workers", [1, 3])
def test_job_detail_of_a_real_job(workers: int, dashboard: Dashboard) -> None:
    result = twister2.run(dash_jobs.pipeline, workers=workers, config=FAST)
    listed = get_json(dashboard, "/api/jobs")["jobs"]
    assert [j["job_id"] for j in listed] == [result.job_id]
    job = listed[0]
    assert (job["state"], job["cluster"], job["workers"], job["name"]) == (
        "COMPLETED",
        "local",
        workers,
        "pipeline",
    )
    assert job["duration"] > 0 and job["end"] >= job["start"]
    assert job["worker_states"] == {"COMPLETED": workers}

    detail = get_json(dashboard, f"/api/jobs/{result.job_id}")
    assert detail["job"] == job | {"duration": detail["job"]["duration"]}
    assert detail["failure"] is None and detail["warnings"] == []
    assert detail["kill"] == {
        "running": False,
        "token_command": f"twister2 token {result.job_id}",
    }
    assert [w["id"] for w in detail["workers"]] == list(range(workers))
    for w in detail["workers"]:
        assert w["state"] == "COMPLETED" and w["host"] and w["pid"] > 0
        assert w["last_heartbeat"] >= w["joined"]
        assert w["metrics"], "no memory/CPU samples"
        assert all(m["rss"] > 1_000_000 for m in w["metrics"]) and w["rss"] > 1_000_000
        messages = [(line["level"], line["message"]) for line in w["logs"]]
        assert ("INFO", f"pipeline starting on worker {w['id']}") in messages
        assert ("WARNING", f"worker {w['id']} done") in messages
        assert w["log_lines"] == len(w["logs"]) and w["logs_dropped"] == 0

    graph = detail["graph"]
    assert graph["source"] == "graph"
    assert graph["nodes"] == [
        {"name": "read", "parallelism": workers},
        {"name": "count", "parallelism": workers},
        {"name": "total", "parallelism": 1},
    ]
    edges = {(e["from"], e["to"]): e for e in graph["edges"]}
    assert set(edges) == {("read", "count"), ("count", "total")}
    shuffle = edges[("read", "count")]
    assert (shuffle["op"], shuffle["name"], shuffle["runs"]) == ("partition", "shuffle", workers)
    assert shuffle["values"] == dash_jobs.VALUES * workers
    assert shuffle["bytes"] == dash_jobs.VALUES * 8 * workers
    assert shuffle["sources"] == shuffle["targets"] == workers
    assert edges[("count", "total")]["op"] == "reduce"
    assert detail["operations"] == graph["edges"]

    tasks = {t["task"]: t for t in detail["tasks"]}
    assert tasks["count"]["parallelism"] == workers
    assert [i["worker"] for i in tasks["count"]["instances"]] == list(range(workers))
    assert detail["stages"] == [
        {
            "stage": "read",
            "done": dash_jobs.STEPS * workers,
            "total": dash_jobs.STEPS * workers,
            "workers": workers,
        }
    ]
    stragglers = [(s["task"], s["index"], s["worker"]) for s in detail["stragglers"]]
    largest = detail["largest_partitions"][0]
    if workers == 1:
        assert stragglers == []
    else:  # the last count instance: 0.9 s against a median of 0.2 s, and 3x the data
        assert stragglers == [("count", workers - 1, workers - 1)]
        assert detail["stragglers"][0]["ratio"] == pytest.approx(4.5)
        assert (largest["task"], largest["index"]) == ("count", workers - 1)
        assert largest["share"] == pytest.approx(3 / (workers + 2))
        assert tasks["count"]["skew"] == pytest.approx(3 / ((workers + 2) / workers))


def test_operations_without_a_declared_graph(dashboard: Dashboard) -> None:
    result = twister2.run(dash_jobs.pipeline, workers=2, config=FAST, args=["operations-only"])
    graph = get_json(dashboard, f"/api/jobs/{result.job_id}")["graph"]
    assert graph["source"] == "operations"
    assert [(n["name"], n["parallelism"]) for n in graph["nodes"]] == [
        ("read", 2),
        ("count", 2),
        ("total", 1),
    ]
    assert [(e["from"], e["op"], e["to"]) for e in graph["edges"]] == [
        ("read", "partition", "count"),
        ("count", "reduce", "total"),
    ]


def test_failed_job_shows_worker_task_and_traceback(dashboard: Dashboard) -> None:
    with pytest.raises(JobFailedError):
        twister2.run(dash_jobs.fail_in_count, workers=3, config=FAST)
    twister2.run(dash_jobs.pipeline, workers=1, config=FAST)
    jobs = get_json(dashboard, "/api/jobs")["jobs"]
    assert [j["state"] for j in jobs] == ["COMPLETED", "FAILED"]  # newest first
    failed = get_json(dashboard, "/api/jobs?state=FAILED")["jobs"]
    assert [j["state"] for j in failed] == ["FAILED"]
    assert "worker 2 raised ValueError: bad record in partition 2" in failed[0]["error"]
    both = get_json(dashboard, "/api/jobs?state=completed,failed")["jobs"]
    assert len(both) == 2
    assert get_json(dashboard, "/api/jobs?state=KILLED")["jobs"] == []
    repeated = get_json(dashboard, "/api/jobs?state=killed&state=completed")["jobs"]
    assert [j["state"] for j in repeated] == ["COMPLETED"]

    detail = get_json(dashboard, f"/api/jobs/{failed[0]['job_id']}")
    failure = detail["failure"]
    assert failure["worker_id"] == 2 and failure["task"] == "count"
    assert failure["exc_type"] == "ValueError" and failure["host"]
    assert "raise error" in failure["traceback"] and "bad record" in failure["traceback"]
    states = {w["id"]: w["state"] for w in detail["workers"]}
    assert states[2] == "FAILED"
    assert {states[0], states[1]} <= {"KILLED", "FAILED"}  # their barrier fails, or stopped


def test_unknown_job_is_a_json_404(dashboard: Dashboard) -> None:
    for path in ("/api/jobs/no-such-job", "/api/jobs/a.b", "/api/jobs/%2e%2e"):
        reply = request(dashboard.url, path)
        assert reply.status == 404, path
        assert reply.headers["content-type"].startswith("application/json")
        assert "error" in reply.json()
    assert "no job 'no-such-job'" in request(dashboard.url, "/api/jobs/no-such-job").json()["error"]
    assert request(dashboard.url, "/api/nothing").status == 404
    assert request(dashboard.url, "/api/jobs/x/y/z").status == 404
    # the job page itself loads and says so (in the browser); an impossible id is a 404 here
    assert request(dashboard.url, "/jobs/no-such-job").status == 200
    assert request(dashboard.url, "/jobs/..").status == 404


NaN_TEXT = float("nan")


def _write_log(folder: Path, lines: list[str], tail: str = "") -> None:
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text("".join(line + "\n" for line in lines) + tail)


def test_corrupt_and_truncated_logs_show_what_is_readable(
    dashboard: Dashboard, jobs_dir: Path
) -> None:
    dead = 2**22 + 11  # beyond pid_max on Linux by default: no such process
    start = {
        "time": 100.0,
        "type": "job",
        "state": "STARTING",
        "name": "broken",
        "cluster": "local",
        "workers": 2,
        "master_pid": dead,
    }
    worker = {"time": 101.0, "type": "worker", "worker_id": 0, "state": "RUNNING", "host": "h"}
    _write_log(
        jobs_dir / "broken-1",
        [
            json.dumps(start),
            "{not json at all",
            json.dumps(worker),
            json.dumps({"time": 102.0, "type": "worker", "worker_id": "zero", "state": "X"}),
            json.dumps({"time": 102.5, "type": "operation", "op": 7}),
            json.dumps({"time": 102.6, "type": "metrics", "worker_id": 0, "rss": NaN_TEXT}),
            "[1, 2, 3]",
            json.dumps({"time": 103.0, "type": "some-future-event", "x": 1}),
            "\x00\x01\xff garbage",
            json.dumps({"time": 104.0, "type": "job", "state": "RUNNING"}),
        ],
        tail='{"time": 105.0, "type": "job", "state": "COMPL',
    )
    _write_log(jobs_dir / "empty-1", [])
    (jobs_dir / "binary-1").mkdir()
    (jobs_dir / "binary-1" / "events.jsonl").write_bytes(bytes(range(256)) * 4)

    jobs = {j["job_id"]: j for j in get_json(dashboard, "/api/jobs")["jobs"]}
    assert set(jobs) == {"broken-1", "empty-1", "binary-1"}
    assert jobs["broken-1"]["state"] == "LOST"  # RUNNING, but its master is gone
    assert jobs["broken-1"]["duration"] == pytest.approx(4.0)
    assert jobs["broken-1"]["warnings"] == 7
    assert jobs["empty-1"]["state"] == "UNKNOWN" and jobs["empty-1"]["warnings"] == 0

    detail = get_json(dashboard, "/api/jobs/broken-1")
    warnings = detail["warnings"]
    assert len(warnings) == 7, warnings
    assert warnings[0] == "line 2 is not valid JSON (corrupt?); skipped"
    assert warnings[1].startswith("line 4: malformed 'worker' event skipped")
    assert warnings[2].startswith("line 5: malformed 'operation' event skipped")
    assert warnings[-1] == "line 11 is incomplete (the log was cut mid-write); skipped"
    assert [(w["id"], w["state"], w["host"]) for w in detail["workers"]] == [
        (0, "LOST", "h"),
        (1, "NOT_JOINED", ""),
    ]
    assert detail["kill"]["running"] is False
    binary = get_json(dashboard, "/api/jobs/binary-1")
    assert binary["job"]["state"] == "UNKNOWN" and binary["warnings"]

    # the log grows: the dashboard reads what was appended, and a rewrite from scratch
    with open(jobs_dir / "empty-1" / "events.jsonl", "a") as f:
        f.write(json.dumps(start | {"name": "grown"}) + "\n")
    assert get_json(dashboard, "/api/jobs/empty-1")["job"]["name"] == "grown"
    (jobs_dir / "empty-1" / "events.jsonl").write_text(json.dumps(start | {"name": "new"}) + "\n")
    assert get_json(dashboard, "/api/jobs/empty-1")["job"]["name"] == "new"


TRAVERSALS = [
    "/static/../../etc/passwd",
    "/static/..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/static/..%5c..%5cetc%5cpasswd",
    "/static/%252e%252e%252fetc%252fpasswd",
    "/static/dashboard.css/../../../etc/passwd",
    "/static/..",
    "/static/",
    "/static//etc/passwd",
    "//etc/passwd",
    "/..",
    "/../../../../etc/passwd",
    "/etc/passwd",
    "/static/%00",
    "/static/job.html%00.css",
    "/static/__init__.py",
    "/static/../server.py",
    "/static/%2e%2e/server.py",
    "/api/jobs/../../etc/passwd",
    "/api/jobs/..%2f..%2fetc%2fpasswd",
    "/jobs/..%2F..%2Fetc%2Fpasswd",
    "/jobs/%2e%2e",
    "/static/\\..\\..\\etc\\passwd",
    "/static/%c0%ae%c0%ae/etc/passwd",
]


def test_only_listed_routes_are_served(dashboard: Dashboard, jobs_dir: Path) -> None:
    (jobs_dir / "secret.txt").write_text("root:x:0:0 do not serve")
    for path in TRAVERSALS:
        reply = request(dashboard.url, path)
        assert reply.status == 404, path
        assert b"root:" not in reply.body, path
    for name in (
        "index.html",
        "job.html",
        "dashboard.css",
        "common.js",
        "graph.js",
        "job.js",
        "jobs.js",
        "favicon.svg",
    ):
        reply = request(dashboard.url, f"/static/{name}")
        assert reply.status == 200, name
        assert reply.headers["x-content-type-options"] == "nosniff"
    assert (
        request(dashboard.url, "/static/common.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    head = request(dashboard.url, "/", "HEAD")
    assert head.status == 200 and head.body == b""


def test_methods_and_hosts_that_are_refused(dashboard: Dashboard) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        assert request(dashboard.url, "/api/jobs", method).status == 405
    assert request(dashboard.url, "/api/jobs", "POST").status == 405
    assert request(dashboard.url, "/api/jobs/x/kill").status == 405  # GET cannot kill
    evil = request(dashboard.url, "/api/jobs", headers={"Host": "evil.example:80"})
    assert evil.status == 403  # DNS rebinding: a loopback dashboard answers loopback names only
    assert request(dashboard.url, "/api/jobs", headers={"Host": "localhost"}).status == 200


def _token_cli(job_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twister2.cli", "token", job_id],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )


def test_kill_needs_the_jobs_token(dashboard: Dashboard, jobs_dir: Path, tmp_path: Path) -> None:
    with background_job(dash_jobs.wait_for_file, 3, tmp_path / "go", jobs_dir) as job:
        path = f"/api/jobs/{job.job_id}"
        wait_until(lambda: get_json(dashboard, path)["job"]["state"] == "RUNNING", what="RUNNING")
        assert get_json(dashboard, path)["kill"]["running"] is True
        master = json.loads((jobs_dir / job.job_id / "master.json").read_text())
        assert (jobs_dir / job.job_id / "master.json").stat().st_mode & 0o077 == 0

        refused = request(dashboard.url, path + "/kill", "POST")
        assert refused.status == 403
        assert f"twister2 token {job.job_id}" in refused.json()["error"]
        wrong = request(
            dashboard.url, path + "/kill", "POST", headers={"X-Twister2-Token": "0" * 64}
        )
        assert wrong.status == 403 and "wrong token" in wrong.json()["error"]
        secret_as_token = request(
            dashboard.url, path + "/kill", "POST", headers={"X-Twister2-Token": master["secret"]}
        )
        assert secret_as_token.status == 403
        body = request(
            dashboard.url,
            path + "/kill",
            "POST",
            body=json.dumps({"token": "nope"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert body.status == 403
        assert get_json(dashboard, path)["job"]["state"] == "RUNNING"

        cli = _token_cli(job.job_id)
        assert cli.returncode == 0, cli.stderr
        token = cli.stdout.strip()
        assert token == job_kill_token(jobs_dir / job.job_id) and len(token) == 64
        killed = request(
            dashboard.url,
            path + "/kill",
            "POST",
            body=json.dumps({"token": token}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert killed.status == 200, killed.body
        assert killed.json() == {"ok": True, "job_id": job.job_id}
        job.join()
        assert isinstance(job.error, JobKilledError)
        assert "killed from the dashboard" in str(job.error)
    detail = get_json(dashboard, path)
    assert detail["job"]["state"] == "KILLED"
    assert detail["job"]["error"] == "killed from the dashboard"
    assert detail["kill"]["running"] is False
    assert {w["state"] for w in detail["workers"]} == {"KILLED"}
    again = request(dashboard.url, path + "/kill", "POST", headers={"X-Twister2-Token": token})
    assert again.status == 409 and "is not running" in again.json()["error"]
    after = _token_cli(job.job_id)
    assert after.returncode == 1 and "is not running" in after.stderr
    assert request(dashboard.url, "/api/jobs/nope/kill", "POST").status == 404


def test_log_shipping_is_rate_limited(dashboard: Dashboard) -> None:
    result = twister2.run(
        dash_jobs.chatty, workers=1, config=FAST | {"dashboard.log_lines_per_second": 50}
    )
    worker = get_json(dashboard, f"/api/jobs/{result.job_id}")["workers"][0]
    assert 50 <= worker["log_lines"] <= 200, worker["log_lines"]
    assert worker["log_lines"] + worker["logs_dropped"] == 5001
    assert worker["logs"][-1]["message"] == "last line"


@pytest.mark.parametrize("workers", [2, 3])
def test_a_comms_example_lists_its_operation_summed_over_workers_and_iterations(
    dashboard: Dashboard, jobs_dir: Path, workers: int
) -> None:
    run = run_keyed_reduce(workers, jobs_dir)
    check_reports(run)
    detail = get_json(dashboard, f"/api/jobs/{run.job_id}")
    assert detail["job"]["state"] == "COMPLETED"
    assert detail["graph"]["source"] == "operations"
    # the example's per-iteration operations (unnamed: "0", "1", "2") are one edge, its operator's
    (edge,) = detail["operations"]
    assert detail["graph"]["edges"] == detail["operations"]
    assert (edge["name"], edge["op"]) == ("keyed_reduce", "keyed_reduce")
    assert (edge["from"], edge["to"]) == ("keyed_reduce sources", "keyed_reduce targets")
    assert (edge["sources"], edge["targets"]) == (workers + 1, max(1, workers - 1))
    assert edge["values"] == run.expected_values()
    assert edge["bytes"] == sum(e["bytes"] for e in run.reports)
    assert edge["runs"] == ITERATIONS * workers
    assert edge["workers"] == list(range(workers))
    took = [e["seconds"] for e in run.reports]
    assert edge["seconds"] == pytest.approx(sum(took), abs=1e-5)
    assert edge["max_seconds"] == pytest.approx(max(took), abs=1e-6)
    nodes = {n["name"]: n["parallelism"] for n in detail["graph"]["nodes"]}
    assert nodes == {"keyed_reduce sources": workers + 1, "keyed_reduce targets": workers - 1}


def test_named_and_repeated_operations_fold_into_one_edge_each(jobs_dir: Path) -> None:
    folder = jobs_dir / "ops-1"
    folder.mkdir(parents=True)
    plan = {"sources": [0, 1], "targets": [0]}
    reports = [
        {"op": "partition", "name": "shuffle", "bytes": 10, "values": 1, "seconds": 0.5},
        {"op": "partition", "name": "shuffle#1", "bytes": 20, "values": 2, "seconds": 1.5},
        {"op": "reduce", "name": "4", "bytes": 5, "values": 1, "seconds": 0.25},
        {"op": "reduce", "name": "5#2", "bytes": 7, "values": 1},  # no seconds: 0
        {"op": "gather", "name": "totals", "source_task": "a", "target_task": "b", "values": 3},
    ]
    lines = [{"time": 1, "type": "job", "state": "STARTING", "name": "ops", "workers": 2}]
    lines += [
        {"time": 2, "type": "operation", "worker_id": i % 2, **plan, **r}
        for i, r in enumerate(reports)
    ]
    lines.append({"time": 3, "type": "job", "state": "COMPLETED"})
    (folder / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with Dashboard(jobs_dir, port=0) as dash:
        detail = get_json(dash, "/api/jobs/ops-1")
    got = {(e["name"], e["from"], e["to"]): e for e in detail["operations"]}
    assert set(got) == {
        ("shuffle", "shuffle sources", "shuffle targets"),
        ("reduce", "reduce sources", "reduce targets"),
        ("totals", "a", "b"),
    }
    shuffle = got[("shuffle", "shuffle sources", "shuffle targets")]
    assert (shuffle["bytes"], shuffle["values"], shuffle["runs"]) == (30, 3, 2)
    assert (shuffle["seconds"], shuffle["max_seconds"]) == (2.0, 1.5)
    reduce = got[("reduce", "reduce sources", "reduce targets")]
    assert (reduce["bytes"], reduce["runs"], reduce["seconds"]) == (12, 2, 0.25)
    assert detail["warnings"] == []


def test_an_operation_with_bad_seconds_is_a_warning(jobs_dir: Path) -> None:
    folder = jobs_dir / "ops-2"
    folder.mkdir(parents=True)
    lines = [
        {"time": 1, "type": "job", "state": "STARTING", "name": "ops", "workers": 1},
        {"time": 2, "type": "operation", "worker_id": 0, "op": "reduce", "seconds": -1},
        {"time": 2, "type": "operation", "worker_id": 0, "op": "reduce", "seconds": 2.0},
    ]
    (folder / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with Dashboard(jobs_dir, port=0) as dash:
        detail = get_json(dash, "/api/jobs/ops-2")
    assert any("'seconds' must be seconds" in w and "-1" in w for w in detail["warnings"])
    (edge,) = detail["operations"]
    assert (edge["runs"], edge["seconds"]) == (1, 2.0)
