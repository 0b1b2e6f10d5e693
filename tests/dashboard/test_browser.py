"""The dashboard's pages in a real headless browser (Debian's chromium, driven by selenium
through /usr/bin/chromedriver; nothing is downloaded). Screenshots go to artifacts/ at the root
of the repository."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import twister2
from tests.dashboard import dash_jobs
from tests.dashboard.conftest import FAST, background_job
from tests.dashboard.keyed_reduce_run import ITERATIONS, check_reports, run_keyed_reduce
from twister2 import JobFailedError
from twister2.dashboard import Dashboard

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip(
        f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian's chromium and chromium-driver; "
        "scripts/system_deps.sh installs them)",
        allow_module_level=True,
    )

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1900",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="twister2-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, check: Any, timeout: float = 30.0) -> Any:
    """Until ``check(driver)`` is true; the pages redraw every 2 s, so an element found in one
    poll may be gone in the next: that poll just counts as not yet."""
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    ).until(check)


def loaded(driver: Any) -> bool:
    return driver.execute_script("return document.body.dataset.loaded === 'true'") is True


def job_rows(driver: Any) -> dict[str, str]:
    """The jobs table as {job id: state}, read in one script (atomic against a redraw)."""
    rows: dict[str, str] = driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#jobs tbody tr')]"
        ".map(r => [r.dataset.job, r.dataset.state]))"
    )
    return rows


def worker_states(driver: Any) -> list[str]:
    states: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#workers tbody tr')].map(r => r.dataset.state)"
    )
    return states


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"no screenshot at {path}"
    assert path.stat().st_size > 10_000
    return path


def test_empty_jobs_page(dashboard: Dashboard, browser: Any) -> None:
    browser.get(dashboard.url + "/")
    wait(browser, loaded)
    assert browser.find_element(By.ID, "empty").is_displayed()
    assert "No jobs yet" in browser.find_element(By.ID, "empty").text
    assert not browser.find_element(By.ID, "jobs").is_displayed()


def test_jobs_and_job_pages_while_running_and_after(
    dashboard: Dashboard, browser: Any, jobs_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(JobFailedError):
        twister2.run(dash_jobs.fail_in_count, workers=2, config=FAST)
    with background_job(dash_jobs.wait_for_file, 3, tmp_path / "go", jobs_dir) as job:
        browser.get(dashboard.url + "/")
        wait(browser, lambda d: job_rows(d).get(job.job_id) == "RUNNING")
        assert len(job_rows(browser)) == 2
        screenshot(browser, "dashboard-jobs-running.png")

        # the state filter
        browser.find_element(By.CSS_SELECTOR, "#filters button[data-state=FAILED]").click()
        wait(browser, lambda d: list(job_rows(d).values()) == ["FAILED"])
        browser.find_element(By.CSS_SELECTOR, "#filters button[data-state=KILLED]").click()
        wait(browser, lambda d: d.find_element(By.ID, "empty").is_displayed())
        assert "No killed jobs" in browser.find_element(By.ID, "empty").text
        browser.find_element(By.CSS_SELECTOR, "#filters button[data-state='']").click()
        wait(browser, lambda d: len(job_rows(d)) == 2)

        # into the running job
        browser.find_element(By.LINK_TEXT, job.job_id).click()
        wait(browser, lambda d: d.current_url.endswith(f"/jobs/{job.job_id}") and loaded(d))
        wait(browser, lambda d: worker_states(d) == ["RUNNING"] * 3)
        assert browser.find_element(By.ID, "state").text == "RUNNING"
        assert browser.find_element(By.ID, "kill").is_displayed()
        assert not browser.find_element(By.ID, "failure").is_displayed()
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#workers .spark-line"))
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".stage[data-stage=wait]"))
        screenshot(browser, "dashboard-job-running.png")

        job.release()
        wait(browser, lambda d: d.find_element(By.ID, "state").text == "COMPLETED", 60)
        job.join()

    nodes = browser.find_elements(By.CSS_SELECTOR, "#graph g.node")
    assert [n.get_attribute("data-name") for n in nodes] == ["read", "count", "total"]
    assert "\u00d7 3" in nodes[0].text  # the parallelism
    edges = browser.find_elements(By.CSS_SELECTOR, "#graph g.edge")
    assert [e.get_attribute("data-op") for e in edges] == ["partition", "reduce"]
    assert "partition" in edges[0].text
    assert "node-slow" in nodes[1].get_attribute("class")  # the straggler's task
    straggler = browser.find_elements(By.CSS_SELECTOR, "#stragglers tbody tr")
    assert len(straggler) == 1 and straggler[0].text.split()[:3] == ["count", "2", "2"]
    partitions = browser.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")
    assert partitions[0].text.split()[:3] == ["count", "2", "2"]
    assert worker_states(browser) == ["COMPLETED"] * 3
    assert "still waiting" in browser.find_element(By.ID, "logs").text
    assert not browser.find_element(By.ID, "kill").is_displayed()
    screenshot(browser, "dashboard-job.png")

    # back to the list, after the end: into the failed job, whose failure comes first
    browser.get(dashboard.url + "/")
    wait(browser, lambda d: job_rows(d).get(job.job_id) == "COMPLETED")
    failed = [j for j, state in job_rows(browser).items() if state == "FAILED"]
    browser.find_element(By.LINK_TEXT, failed[0]).click()
    wait(browser, lambda d: d.find_element(By.ID, "failure").is_displayed())
    failure = browser.find_element(By.ID, "failure")
    assert "worker 1 raised ValueError: bad record in partition 1" in failure.text
    assert "count" in browser.find_element(By.ID, "failure-facts").text
    assert "Traceback" in browser.find_element(By.ID, "failure-traceback").text
    top = browser.execute_script(
        "return [...document.querySelectorAll('#page > *')].find(e => !e.hidden).id"
    )
    assert top == "failure"
    screenshot(browser, "dashboard-job-failed.png")


def test_missing_job_and_damaged_log_pages(
    dashboard: Dashboard, browser: Any, jobs_dir: Path
) -> None:
    browser.get(dashboard.url + "/jobs/no-such-job")
    wait(browser, loaded)
    assert browser.find_element(By.ID, "missing").is_displayed()
    assert "no job 'no-such-job'" in browser.find_element(By.ID, "missing").text

    folder = jobs_dir / "damaged-1"
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text(
        '{"time": 1, "type": "job", "state": "STARTING", "name": "damaged", "workers": 1}\n'
        "{oops\n"
        '{"time": 2, "type": "job", "state": "COMPLETED"}\n'
    )
    browser.get(dashboard.url + "/jobs/damaged-1")
    wait(browser, loaded)
    warnings = browser.find_element(By.ID, "warnings")
    assert warnings.is_displayed() and "line 2 is not valid JSON" in warnings.text
    assert browser.find_element(By.ID, "state").text == "COMPLETED"


def test_kill_from_the_job_page_needs_the_token(
    dashboard: Dashboard, browser: Any, jobs_dir: Path, tmp_path: Path
) -> None:
    from twister2.dashboard import job_kill_token

    with background_job(dash_jobs.wait_for_file, 1, tmp_path / "go", jobs_dir) as job:
        browser.get(f"{dashboard.url}/jobs/{job.job_id}")
        wait(browser, lambda d: loaded(d) and d.find_element(By.ID, "state").text == "RUNNING")
        assert f"twister2 token {job.job_id}" in browser.find_element(By.ID, "kill-hint").text
        button = browser.find_element(By.CSS_SELECTOR, "#kill button")
        button.click()
        wait(browser, lambda d: "needs its token" in d.find_element(By.ID, "kill-result").text)
        browser.find_element(By.ID, "kill-token").send_keys("not-the-token")
        button.click()
        wait(browser, lambda d: "wrong token" in d.find_element(By.ID, "kill-result").text)
        assert browser.find_element(By.ID, "state").text == "RUNNING"
        field = browser.find_element(By.ID, "kill-token")
        field.clear()
        field.send_keys(job_kill_token(jobs_dir / job.job_id))
        button.click()
        wait(browser, lambda d: d.find_element(By.ID, "state").text == "KILLED", 60)
        job.join()
        assert job.error is not None and "killed from the dashboard" in str(job.error)


def operation_rows(driver: Any) -> list[dict[str, Any]]:
    """The operations table, read in one script (atomic against a redraw)."""
    rows: list[dict[str, Any]] = driver.execute_script(
        "return [...document.querySelectorAll('#operations tbody tr')].map(r => ({"
        "name: r.dataset.name, op: r.dataset.op, values: Number(r.dataset.values),"
        "bytes: Number(r.dataset.bytes), runs: Number(r.dataset.runs),"
        "cells: [...r.cells].map(c => c.textContent)}))"
    )
    return rows


@pytest.mark.parametrize("workers", [2, 3])
def test_the_keyed_reduce_example_draws_its_operation(
    dashboard: Dashboard, browser: Any, jobs_dir: Path, workers: int
) -> None:
    run = run_keyed_reduce(workers, jobs_dir)
    check_reports(run)
    browser.get(f"{dashboard.url}/jobs/{run.job_id}")
    wait(browser, lambda d: loaded(d) and d.find_element(By.ID, "state").text == "COMPLETED")
    assert not browser.find_element(By.ID, "graph-empty").is_displayed()
    assert "No operations reported yet" not in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_element(By.ID, "graph-source").text == "(operations the job ran)"

    nodes = browser.find_elements(By.CSS_SELECTOR, "#graph g.node")
    assert [n.get_attribute("data-name") for n in nodes] == [
        "keyed_reduce sources",
        "keyed_reduce targets",
    ]
    assert f"\u00d7 {workers + 1}" in nodes[0].text and f"\u00d7 {workers - 1}" in nodes[1].text
    (edge,) = browser.find_elements(By.CSS_SELECTOR, "#graph g.edge")
    assert edge.get_attribute("data-op") == "keyed_reduce"
    values = run.expected_values()
    assert f"{values:,} values" in edge.text

    (row,) = operation_rows(browser)
    assert browser.find_element(By.ID, "operations").is_displayed()
    sent = sum(e["bytes"] for e in run.reports)
    assert (row["name"], row["op"], row["values"], row["bytes"]) == (
        "keyed_reduce",
        "keyed_reduce",
        values,
        sent,
    )
    assert row["runs"] == ITERATIONS * workers
    name, op, ends, sources, targets, runs, shown_values, shown_bytes, took, longest = row["cells"]
    assert (name, op) == ("keyed_reduce", "keyed_reduce")
    assert ends == "keyed_reduce sources \u2192 keyed_reduce targets"
    assert (sources, targets, runs) == (str(workers + 1), str(workers - 1), str(3 * workers))
    assert shown_values == f"{values:,}"
    assert 1024 <= sent < 1024 * 1024  # shown in KiB, as common.js's T2.bytes writes them
    assert shown_bytes == (
        f"{sent / 1024:.0f} KiB" if sent >= 10 * 1024 else f"{sent / 1024:.1f} KiB"
    )
    assert took.endswith((" ms", " s")) and longest.endswith((" ms", " s"))
    screenshot(browser, f"dashboard-keyed-reduce-{workers}.png")
