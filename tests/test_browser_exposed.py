"""An exposed studio (`studio run --host 0.0.0.0`) in a real browser: the printed setup token makes the first admin.

Its own module: the other browser tests hold a module-scoped Playwright session (``browser_studio``), and a second
sync Playwright in the same module fails ("Sync API inside the asyncio loop")."""

import pytest
from browser_support import ADMIN, ADMIN_PASSWORD, screenshot, settle


def test_exposed_studio_needs_the_printed_setup_token(tmp_path, tiny_model_dir):
    """`studio run --host 0.0.0.0`, started outside the repository: the terminal shows a setup token, the first
    admin needs it, and afterwards the sign-in page offers no self sign-up."""
    import os
    import re
    import subprocess
    import sys

    from browser_support import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _free_port, _stop, _wait_healthy

    if not CHROMIUM.is_file():
        pytest.skip("no /usr/bin/chromium: install Debian's chromium (`make browser`) to run the browser test")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    from playwright.sync_api import sync_playwright

    from backend.db.engine import session_scope, upgrade_database
    from backend.models.store import add_model

    data = tmp_path / "studio-data"
    url = f"sqlite:///{data / 'studio.db'}"
    upgrade_database(url)
    with session_scope(write=True, url=url) as s:
        add_model(s, str(tiny_model_dir), name="tiny")
    port = _free_port()
    env = {**os.environ, "STUDIO_DATA_DIR": str(data), "STUDIO_DEFAULT_MODEL": "tiny", "STUDIO_WORKER_AUTOSTART":
           "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("STUDIO_DATABASE_URL", None)
    log = tmp_path / "server.log"
    with log.open("wb") as fh:
        server = subprocess.Popen([sys.executable, "-m", "cli.main", "run", "--host", "0.0.0.0", "--port", str(port)],
                                  cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_healthy(port, server, log)
        token = re.search(r"setup token:\s+(\S+)", log.read_text()).group(1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                tab = browser.new_page()
                tab.set_default_timeout(TIMEOUT_MS)
                tab.goto(f"http://127.0.0.1:{port}", wait_until="domcontentloaded")
                tab.get_by_text("setup token", exact=False).first.wait_for()
                tab.get_by_role("tab", name="Create account").click()
                panel = tab.get_by_role("tabpanel", name="Create account")

                def create(name: str, given: str) -> None:
                    panel.get_by_role("textbox", name="User name", exact=True).fill(name)
                    panel.get_by_role("textbox", name="Password", exact=True).fill(ADMIN_PASSWORD)
                    panel.get_by_role("textbox", name="Repeat password", exact=True).fill(ADMIN_PASSWORD)
                    panel.get_by_role("textbox", name="Setup token", exact=True).fill(given)
                    panel.get_by_role("button", name="Create account and sign in").click()
                    settle(tab)

                create("mallory", "not-the-token")
                tab.get_by_text("Enter the setup token printed in the terminal").wait_for()
                create(ADMIN, token)
                tab.get_by_test_id("stSidebar").get_by_text(f"Signed in as {ADMIN}").wait_for()
                screenshot(tab, "access-exposed-first-admin")
                other = browser.new_page()
                other.set_default_timeout(TIMEOUT_MS)
                other.goto(f"http://127.0.0.1:{port}", wait_until="domcontentloaded")
                other.get_by_role("tab", name="Create account").click()
                other.get_by_text("Self sign-up is off on this studio").wait_for()
            finally:
                browser.close()
    finally:
        _stop(server.pid)
    with session_scope(url=url) as s:
        from labeling import accounts

        assert [(u.name, u.role) for u in accounts.all_users(s)] == [(ADMIN, "admin")]
