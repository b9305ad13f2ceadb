"""Keyboard-only ranking in headless chromium: after signing in, an annotator ranks three items, flags, takes back
a key and skips an item with the keys alone (no clicks); the database holds exactly the intended rankings."""

import pytest
from browser_support import ADMIN, screenshot, settle, sign_in, sign_up

pytestmark = pytest.mark.browser
PASSWORD = "annotator-password"


def ranked(tab) -> str:
    return tab.get_by_test_id("stMetric").filter(has_text="You ranked").get_by_test_id("stMetricValue").inner_text()


def wait_ranked(tab, n: int, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while ranked(tab) != str(n):
        assert time.monotonic() < deadline, f"'You ranked' stayed at {ranked(tab)}, not {n}"
        time.sleep(0.3)


def key(tab, name: str) -> None:
    tab.keyboard.press(name)
    settle(tab, quiet=0.6)


def test_ranking_three_items_with_the_keyboard_only(browser_studio):
    from sqlalchemy import select

    from backend.db.engine import session_scope
    from backend.db.tables import User
    from labeling import accounts, synthetic, workbench

    admin = browser_studio.new_tab()
    sign_up(admin)
    with session_scope(write=True, url=browser_studio.db_url) as s:
        campaign = synthetic.seed_campaign(s, "keys", n_items=5, k=3, overlap=1).id
        admin_id = s.scalar(select(User.id).where(User.name == ADMIN))
        ann = accounts.create_user(s, admin_id, "ann", PASSWORD).id
    tab = browser_studio.new_tab()
    sign_in(tab, "ann", PASSWORD)
    tab.get_by_text("Keys:").first.wait_for()
    tab.evaluate("document.activeElement && document.activeElement.blur()")  # no text box has the focus
    screenshot(tab, "keyboard-1-legend")

    for k in ("2", "1", "3"):
        key(tab, k)
    tab.get_by_text("next: Response").wait_for(state="detached")  # every response has a rank
    key(tab, "Enter")
    tab.get_by_text("Ranking saved.").first.wait_for()
    assert ranked(tab) == "1"
    for k in ("1", "z", "1", "f", "2"):  # a key taken back, a flag
        key(tab, k)
    key(tab, "Enter")
    wait_ranked(tab, 2)
    key(tab, "s")  # skip the third item
    tab.get_by_text("Item skipped.").first.wait_for()
    for k in ("3", "2", "1", "Enter"):
        key(tab, k)
    wait_ranked(tab, 3)
    screenshot(tab, "keyboard-2-after-three")

    with session_scope(url=browser_studio.db_url) as s:
        history = workbench.my_history(s, ann, campaign, limit=10)
    judged = [h["judgement"] for h in reversed(history)]
    assert judged == ["A 2 · B 1 · C 3", "A 1 · B F · C 2", "skipped", "A 3 · B 2 · C 1"]
