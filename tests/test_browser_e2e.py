"""The studio's main flows in headless chromium, against a real server and a real background worker.

A temp data dir holds a fresh database with the tiny random model registered as ``tiny`` (the default
model), so the walk is offline and takes a couple of minutes on a CPU: Playground → Labeling → Jobs (a
3-step LoRA run) → Evaluation (the base model and the new adapter on 5 examples). Screenshots of each
page land in ``test-artifacts/``.

Needs Debian's chromium (``make browser``); Playwright drives it, no browser download.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1400, 1000
TIMEOUT_MS = 60_000  # one page run, model load included, on a slow shared CPU
JOB_TIMEOUT_MS = 90_000  # a queued job: worker pickup, child process start, training or evaluation


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(port: int, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the studio exited with code {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the studio did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(pid: int, grace: float = 15) -> None:
    """SIGTERM a process we started (a worker then stops its job), SIGKILL it if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it
                return
        except ChildProcessError:  # not our child (the worker belongs to the server): poll for it
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stop_workers(url: str) -> None:
    """Stop the workers the studio started for this data dir (detached: they outlive the server)."""
    from sqlalchemy import select

    from backend.db.engine import get_engine, session_scope
    from backend.db.tables import Worker

    with session_scope(url=url) as s:
        pids = list(s.scalars(select(Worker.pid).where(Worker.stopped_at.is_(None))))
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"jobs.worker" in cmdline:  # the pid was not reused by something else
            _stop(pid)
    get_engine(url).dispose()


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory, tiny_model_dir):
    """A running studio on a free port: fresh data dir, ``tiny`` registered and default, worker autostart on."""
    if not CHROMIUM.is_file():
        pytest.skip("no /usr/bin/chromium: install Debian's chromium (`make browser`) to run the browser test")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    from backend.db.engine import session_scope, upgrade_database
    from backend.models.store import add_model

    data = tmp_path_factory.mktemp("e2e") / "studio-data"
    url = f"sqlite:///{data / 'studio.db'}"
    upgrade_database(url)
    with session_scope(write=True, url=url) as s:
        add_model(s, str(tiny_model_dir), name="tiny")
    port = _free_port()
    env = {**os.environ, "STUDIO_DATA_DIR": str(data), "STUDIO_DEFAULT_MODEL": "tiny",
           "STUDIO_WORKER_AUTOSTART": "true", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("STUDIO_DATABASE_URL", None)
    log = data.parent / "server.log"
    with log.open("wb") as fh:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "studio_app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_healthy(port, server, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(server.pid)
        _stop_workers(url)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "e2e-server.log").write_bytes(log.read_bytes())


@pytest.fixture(scope="module")
def page(studio_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            tab.set_default_timeout(TIMEOUT_MS)
            tab.goto(studio_url, wait_until="domcontentloaded")
            yield tab
        finally:
            browser.close()


def settle(page, quiet: float = 0.8, timeout: float = 60) -> None:
    """Wait until no script run is in progress (no status widget, no stale elements) for ``quiet`` s."""
    deadline, calm_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        busy = page.locator('[data-testid="stStatusWidget"], [data-stale="true"]').count() > 0
        now = time.monotonic()
        if busy:
            calm_since = None
        elif calm_since is None:
            calm_since = now
        elif now - calm_since >= quiet:
            return
        time.sleep(0.1)
    raise AssertionError(f"the page was still running after {timeout:.0f} s")


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it first."""
    ARTIFACTS.mkdir(exist_ok=True)
    settle(page, quiet=0.5)
    height = page.evaluate("() => document.querySelector('[data-testid=stMainBlockContainer]')?.scrollHeight ?? 0")
    page.set_viewport_size({"width": WIDTH, "height": min(max(HEIGHT, height + 80), 4000)})
    settle(page, quiet=0.5)
    page.screenshot(path=str(ARTIFACTS / f"e2e-{name}.png"))
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})


def choose(page, label: str, option: str) -> None:
    """Pick an option of a selectbox (or multiselect) by its label."""
    page.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def open_page(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title).wait_for()
    settle(page)


def playground(page) -> None:
    page.get_by_role("button", name="Generate").wait_for()
    settle(page)
    choose(page, "Preset", "creative")  # sampling: the random tiny model then writes visible tokens
    settle(page)
    seed = page.get_by_role("spinbutton", name="Seed (0 = random)", exact=True)
    seed.fill("7")
    seed.press("Enter")
    settle(page)
    prompt = page.get_by_role("textbox", name="Prompt", exact=True)
    prompt.fill("Tell me about cake.")
    prompt.press("Control+Enter")  # commit the text before clicking
    settle(page)
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Tokens/s").wait_for()
    settle(page)
    output = page.locator(".st-key-pg-output")
    assert output.inner_text().strip(), "the completion box is empty"
    screenshot(page, "1-playground")


def labeling(page) -> None:
    open_page(page, "Labeling")
    name = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Your name", exact=True)
    name.fill("ada")
    name.press("Enter")
    settle(page)
    page.get_by_role("button", name="Create demo campaign").click()
    page.get_by_role("button", name="Submit ranking").wait_for()  # the demo item's 3 completions are generated
    settle(page)
    first_prompt = page.get_by_test_id("stAlertContentInfo").inner_text()
    screenshot(page, "2-labeling")
    for letter, rank in zip("ABC", "123", strict=True):
        choose(page, f"Rank {letter}", rank)
    page.get_by_role("button", name="Submit ranking").click()
    page.get_by_text("1 of 20 judgements").wait_for()
    page.get_by_role("button", name="Submit ranking").wait_for()
    settle(page)
    assert page.get_by_test_id("stAlertContentInfo").inner_text() != first_prompt, "the next item is not shown"
    screenshot(page, "3-labeling-next")


def jobs(page) -> str:
    """Queue the tiny LoRA preset on ``tiny`` for 3 steps and follow it to the end; returns the adapter name."""
    open_page(page, "Jobs")
    page.get_by_text("New fine-tuning job").click()
    choose(page, "Start from preset", "sft-lora-tiny-cpu")
    settle(page)
    choose(page, "base_model", "tiny")
    settle(page)
    page.get_by_text("train: TrainArgs", exact=True).click()
    steps = page.get_by_role("spinbutton", name="max_steps", exact=True)
    steps.fill("3")
    steps.press("Enter")
    settle(page)
    assert "max_steps: 3" in page.get_by_test_id("stCode").first.inner_text()
    page.get_by_role("button", name="Queue job").click()
    page.get_by_text("Queued job").wait_for()
    page.get_by_test_id("stMetricValue").filter(has_text="succeeded").wait_for(timeout=JOB_TIMEOUT_MS)
    page.get_by_test_id("stPlotlyChart").first.wait_for()
    adapter = page.get_by_text("Trained model registered as").locator("strong").inner_text()
    page.get_by_text("New fine-tuning job").click()  # fold the form so the job panel is in view
    time.sleep(1)  # the expander's animation
    screenshot(page, "4-jobs")
    return adapter


def evaluation(page, adapter: str) -> None:
    open_page(page, "Evaluation")
    page.get_by_text("No evaluation yet").wait_for()
    models = page.get_by_test_id("stMultiSelect").filter(has_text="Models and adapters")
    for name in ("tiny", adapter):
        models.click()
        page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")
    examples = page.get_by_role("spinbutton", name="Test examples", exact=True)
    examples.fill("5")
    examples.press("Tab")
    page.get_by_role("button", name="Run evaluation").click()
    page.get_by_text("Queued evaluation job(s)").wait_for()
    chart = page.get_by_test_id("stPlotlyChart").first
    chart.wait_for(timeout=JOB_TIMEOUT_MS)
    chart.get_by_text(adapter).first.wait_for(timeout=JOB_TIMEOUT_MS)  # both runs in the legend
    chart.get_by_text("tiny", exact=True).first.wait_for()
    settle(page)
    screenshot(page, "5-evaluation")


def test_studio_main_flows(page):
    playground(page)
    labeling(page)
    adapter = jobs(page)
    evaluation(page, adapter)
