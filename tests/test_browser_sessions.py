"""Sign-in that survives a reload, a new tab and a server restart (an HttpOnly cookie), and sign-out that reaches
the other tabs, in headless chromium against a real server."""

import time

import pytest
from browser_support import TIMEOUT_MS, screenshot, settle, sign_up

pytestmark = pytest.mark.browser


def session_cookie(context) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == "studio_session"), None)


def wait_for_cookie(context, present: bool = True, timeout: float = 20) -> dict | None:
    deadline = time.monotonic() + timeout
    while (session_cookie(context) is not None) != present:
        assert time.monotonic() < deadline, f"the session cookie was {'never set' if present else 'not cleared'}"
        time.sleep(0.2)
    return session_cookie(context)


def signed_in(tab, name: str = "admin") -> None:
    tab.get_by_test_id("stSidebar").get_by_text(f"Signed in as {name}").wait_for(timeout=TIMEOUT_MS)


def test_sign_in_survives_reload_new_tab_and_restart_and_sign_out_reaches_other_tabs(browser_studio):
    tab = browser_studio.new_tab()
    sign_up(tab)
    cookie = wait_for_cookie(tab.context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert cookie["expires"] > time.time() + 6 * 86400  # the default: 7 days
    assert tab.evaluate("document.cookie").find("studio_session") == -1  # page scripts cannot read it

    tab.reload()
    signed_in(tab)
    other = tab.context.new_page()  # a new tab of the same browser
    other.goto(browser_studio.url)
    signed_in(other)
    settle(other)

    browser_studio.restart_server()
    tab.reload()
    signed_in(tab)
    settle(tab)
    screenshot(tab, "sessions-1-after-restart")

    other.reload()
    signed_in(other)
    settle(other)
    tab.get_by_role("button", name="Sign out", exact=True).click()
    tab.get_by_role("heading", name="Sign in to Loop Studio").wait_for()
    other.get_by_test_id("stSidebarNav").get_by_role("link", name="Campaigns").click()  # the other tab's next run
    other.get_by_role("heading", name="Sign in to Loop Studio").wait_for()
    wait_for_cookie(tab.context, present=False)
    tab.reload()
    tab.get_by_role("heading", name="Sign in to Loop Studio").wait_for()
    screenshot(other, "sessions-2-signed-out-elsewhere")
