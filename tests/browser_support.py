"""Shared pieces of the headless-browser tests: a real studio server, chromium tabs, and page helpers.

A browser test module does ``from browser_support import choose, open_page, screenshot, settle, sign_up``
and takes the ``browser_studio`` fixture (registered in conftest.py). ``browser_studio`` (module scope) starts ``streamlit run app/server.py`` (the app and its sign-in cookie routes) on a free port with a fresh data
dir (the tiny random model registered as ``tiny`` and default, worker autostart on) and yields a
``BrowserStudio``: ``.url``, ``.db_url``, ``.new_tab()`` and ``.restart_server()`` — each tab is its own browser context, so two
tabs are two signed-in users. Screenshots land in ``test-artifacts/``.

Needs Debian's chromium (``make browser``); Playwright drives it, no browser download.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1400, 1000
TIMEOUT_MS = 60_000  # one page run, model load included, on a slow shared CPU
JOB_TIMEOUT_MS = 120_000  # a queued job: worker pickup, child process start, training or evaluation
ADMIN, ADMIN_PASSWORD = "admin", "admin-password"


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


@dataclass
class StudioServer:
    """``streamlit run app/server.py`` on one port, its output appended to ``log``."""

    port: int
    env: dict
    log: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "server.py"),
                 "--server.port", str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true",
                 "--browser.gatherUsageStats", "false"],
                cwd=REPO, env=self.env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait_healthy(self.port, self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process.pid)


@dataclass
class BrowserStudio:
    url: str
    db_url: str
    data_dir: Path
    _browser: object = None
    _contexts: list = field(default_factory=list)
    _server: "StudioServer | None" = None

    def restart_server(self) -> None:
        """Stop the studio's web server (SIGTERM, as a deploy or a crash-restart would) and start it again on
        the same port; the workers it started are detached and carry on."""
        self._server.stop()
        self._server.start()

    def new_tab(self):
        """A page in a fresh browser context (own cookies and Streamlit session), opened on the studio."""
        context = self._browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
        self._contexts.append(context)
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(self.url, wait_until="domcontentloaded")
        return tab


@pytest.fixture(scope="module")
def browser_studio(tmp_path_factory, tiny_model_dir, request):
    """A running studio on a free port and a chromium to drive it (see the module docstring)."""
    if not CHROMIUM.is_file():
        pytest.skip("no /usr/bin/chromium: install Debian's chromium (`make browser`) to run the browser test")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    from playwright.sync_api import sync_playwright

    from backend.db.engine import session_scope, upgrade_database
    from backend.models.store import add_model

    name = request.module.__name__.rsplit(".", 1)[-1]
    data = tmp_path_factory.mktemp(name) / "studio-data"
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
    server = StudioServer(port, env, log)
    try:
        server.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield BrowserStudio(f"http://127.0.0.1:{port}", url, data, browser, _server=server)
            finally:
                browser.close()
    finally:
        server.stop()
        _stop_workers(url)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"{name}-server.log").write_bytes(log.read_bytes())


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
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})


def expander(page, title: str) -> None:
    """Open (or fold) an expander by its title and let it finish moving: a click on a widget inside an expander
    that is still opening can land while the page shifts, give the widget focus and open nothing."""
    page.get_by_test_id("stExpander").get_by_text(title).first.click()
    page.wait_for_timeout(500)  # the open/close animation
    settle(page, quiet=0.5)


def select(page, box, option: str, *, type_first: bool = False) -> None:
    """Open a selectbox or multiselect (a locator) and click ``option``; if the menu did not open (a click that
    only focused the box, or a rerun that closed it), close it and try again. ``type_first`` types the option's
    text to filter a long, virtualised list (far options are not in the page until filtered)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(3):
        box.click()
        if type_first:
            page.keyboard.press("Control+A")  # a retry replaces the filter text typed before
            page.keyboard.type(option)
        target = page.get_by_role("option", name=option, exact=True)
        try:
            target.wait_for(timeout=10_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            settle(page, quiet=0.5)
            continue
        target.click()
        return
    raise AssertionError(f"the option '{option}' never appeared")


def choose(page, label: str, option: str, *, type_first: bool = False) -> None:
    """Pick an option of a selectbox by its label."""
    select(page, page.get_by_test_id("stSelectbox").filter(has_text=label), option, type_first=type_first)


def open_page(page, title: str) -> None:
    """Follow a sidebar navigation link (unfolding the navigation first when it shows only its first links) and
    wait for the page's heading."""
    more = page.get_by_test_id("stSidebar").get_by_text(re.compile(r"^View \d+ more$"))
    if more.count():
        more.first.click()
        settle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title).wait_for()
    settle(page)


def _account_form(page, tab: str, name: str, password: str, button: str) -> None:
    page.get_by_role("tab", name=tab).click()
    panel = page.get_by_role("tabpanel", name=tab)
    panel.get_by_role("textbox", name="User name", exact=True).fill(name)
    panel.get_by_role("textbox", name="Password", exact=True).fill(password)
    if tab == "Create account":
        panel.get_by_role("textbox", name="Repeat password", exact=True).fill(password)
    panel.get_by_role("button", name=button).click()
    page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {name}").wait_for()
    settle(page)


def sign_up(page, name: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
    """Create an account on the sign-in page (the first account of a studio is its admin) and sign in."""
    _account_form(page, "Create account", name, password, "Create account and sign in")


def sign_in(page, name: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
    _account_form(page, "Sign in", name, password, "Sign in")

