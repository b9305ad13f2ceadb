"""Restarting the web server while a job trains: the job goes on in its worker, and the Jobs page reattaches.

A real studio server and its autostarted worker (detached: it outlives the server), a LoRA SFT job queued from the
browser and followed until it is running; the server is stopped with SIGTERM and started again on the same port.
The worker and the job process never stop; after the restart the same tab shows the same job still running, its
step still advancing, and its Cancel button still stops it.
"""

import os
import time

import pytest
from browser_support import (
    choose,
    expander,
    open_page,
    screenshot,
    settle,
    sign_in,
    sign_up,
)
from sqlalchemy import select

pytestmark = pytest.mark.browser


def the_job(url: str):
    from backend.db.engine import session_scope
    from backend.db.tables import Job, Worker

    with session_scope(url=url) as s:
        job = s.scalars(select(Job).order_by(Job.id.desc())).first()
        worker = s.get(Worker, job.worker_id) if job and job.worker_id else None
        return (job.status, job.pid, worker.pid if worker else None) if job else (None, None, None)


def steps_done(url: str, job_id: int = 1) -> int:
    from backend.db.engine import session_scope
    from jobs import queue

    with session_scope(url=url) as s:
        return max((m["step"] for m in queue.job_metrics(s, job_id) if m["key"] == "loss"), default=0)


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def step_metric(tab) -> int:
    text = tab.get_by_test_id("stMetric").filter(has_text="Step").get_by_test_id("stMetricValue").inner_text()
    return int(text.replace(",", "")) if text.strip().isdigit() else 0  # "–" before the first step


def wait_until(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_restarting_the_server_keeps_the_job_and_the_page_reattaches(browser_studio):
    tab = browser_studio.new_tab()
    sign_up(tab)
    open_page(tab, "Jobs")
    expander(tab, "New job")
    choose(tab, "Start from preset", "sft-lora-tiny-cpu")
    settle(tab)
    expander(tab, "Training controls")
    box = tab.get_by_role("spinbutton", name="max_steps", exact=True)
    box.fill("2000")  # long enough to outlast the restart
    box.press("Enter")
    settle(tab)
    tab.get_by_role("button", name="Queue job").click()
    tab.get_by_text("Queued job").wait_for()
    url = browser_studio.db_url
    wait_until(lambda: the_job(url)[0] == "running" and steps_done(url) >= 2, what="the job to train")
    _, job_pid, worker_pid = the_job(url)
    assert alive(job_pid) and alive(worker_pid)

    browser_studio.restart_server()
    before = steps_done(url)
    assert the_job(url)[0] == "running" and alive(job_pid) and alive(worker_pid), "the job stopped with the server"

    tab.reload()  # what a user does when the page says the connection was lost
    signed_in = tab.get_by_test_id("stSidebar").get_by_text("Signed in as")
    sign_in_page = tab.get_by_role("heading", name="Sign in to Loop Studio")
    signed_in.or_(sign_in_page).first.wait_for()
    settle(tab)
    if sign_in_page.count():  # a sign-in that does not survive a restart: the deep link is not found signed out
        tab.goto(browser_studio.url)
        sign_in_page.wait_for()
        settle(tab)
        sign_in(tab)
    open_page(tab, "Jobs")
    tab.get_by_test_id("stMetricValue").filter(has_text="running").wait_for()
    first = step_metric(tab)
    assert first >= before
    wait_until(lambda: step_metric(tab) > first, what="the page to show new steps")  # live, not a snapshot
    screenshot(tab, "restart-1-job-reattached")
    assert the_job(url)[1] == job_pid, "the same job process, not a restarted one"

    tab.get_by_role("button", name="Cancel").click()
    tab.get_by_test_id("stMetricValue").filter(has_text="cancelled").wait_for(timeout=120_000)
    assert the_job(url)[0] == "cancelled"
    assert alive(worker_pid), "the worker outlives its job and the server"
