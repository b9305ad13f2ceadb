"""The labeling loop in headless chromium, against a real server and a real background worker.

The issue's "done when" walk: an admin signs up and creates a campaign from the demo prompts with two sources
(the tiny model with two decoding presets); the background job generates the completions; two annotators (one
created by the admin, one signing up) rank in two separate browser sessions, one of them undoing and redoing a
submission; the admin sees agreement and exports preference pairs, which load with ``datasets`` as a
reward-model job would read them. Screenshots land in ``test-artifacts/labeling-*.png``.
"""

from pathlib import Path

import pytest
from browser_support import JOB_TIMEOUT_MS, expander, open_page, screenshot, settle, sign_in, sign_up

pytestmark = pytest.mark.browser
PASSWORD = "annotator-password"
N_PROMPTS = 3


def fill(page, role: str, name: str, value: str) -> None:
    box = page.get_by_role(role, name=name, exact=True)
    box.fill(value)
    box.press("Enter" if role == "spinbutton" else "Tab")
    settle(page)


def create_campaign(admin) -> None:
    open_page(admin, "Campaigns")
    fill(admin, "textbox", "Campaign name", "browser-round")
    fill(admin, "spinbutton", "How many prompts (0 = all)", str(N_PROMPTS))
    fill(admin, "spinbutton", "Max new tokens", "12")  # source 1: balanced preset
    admin.get_by_role("tab", name="Source 2").click()
    fill(admin, "spinbutton", "Max new tokens", "12")  # source 2: creative preset
    screenshot(admin, "labeling-0-new-campaign")
    admin.get_by_role("button", name="Create campaign and generate completions").click()
    admin.get_by_text("Completion job #1").first.wait_for()
    admin.get_by_text("Completion job #1 succeeded.").wait_for(timeout=JOB_TIMEOUT_MS)
    settle(admin)
    screenshot(admin, "labeling-1-campaigns")
    # quality checks: the first item becomes gold (its first completion the known best), served 1 item in 2
    expander(admin, "Quality checks: gold items and 'too fast'")
    fill(admin, "spinbutton", "Gold items per 100 served", "50")
    admin.get_by_role("button", name="Save checks").click()
    admin.get_by_text("Checks saved.").wait_for()
    admin.get_by_role("button", name="Mark as gold").click()
    admin.get_by_text("1 gold item(s).").wait_for()
    settle(admin)


def create_annotator(admin, name: str) -> None:
    open_page(admin, "Accounts")
    fill(admin, "textbox", "User name", name)
    fill(admin, "textbox", "Password", PASSWORD)
    admin.get_by_role("button", name="Create account").click()
    admin.get_by_text(f"Account '{name}' created (annotator).").wait_for()
    settle(admin)
    screenshot(admin, "labeling-2-accounts")


def rank(tab, ranks: list[str], *, submit: bool = True) -> None:
    """Click a rank for each response of the item shown, then submit."""
    groups = tab.get_by_test_id("stButtonGroup")
    groups.first.wait_for()
    assert groups.count() == len(ranks)
    for i, value in enumerate(ranks):
        groups.nth(i).get_by_text(value, exact=True).click()
    if submit:
        tab.get_by_role("button", name="Submit ranking").click()
        settle(tab)


def ranked(tab) -> str:
    return tab.get_by_test_id("stMetric").filter(has_text="You ranked").get_by_test_id("stMetricValue").inner_text()


def annotate(tab, name: str, orders: list[list[str]], *, undo_once: bool = False,
             bad_first: list[str] | None = None) -> None:
    heading = tab.get_by_role("heading", name="Labeling")
    heading.wait_for()
    settle(tab)
    assert tab.get_by_test_id("stSidebarNav").count() == 0  # one page only (the workbench): no navigation
    for n, order in enumerate(orders, start=1):
        if bad_first and n == 2:  # a ranking with a gap is refused with a message, and nothing is stored
            rank(tab, bad_first)
            tab.get_by_text("have gaps").wait_for()
            assert ranked(tab) == "1"
            screenshot(tab, f"labeling-3-refused-{name}")
        rank(tab, order)  # (each new click differs from the refused one: clicking a picked rank un-picks it)
        assert ranked(tab) == str(n)
        if n == 1:
            screenshot(tab, f"labeling-3-workbench-{name}")
        if undo_once and n == 1:
            tab.get_by_role("button", name="Undo last submission").click()
            settle(tab)
            assert ranked(tab) == "0"
            tab.get_by_role("button", name="Submit ranking").click()  # the form came back prefilled
            settle(tab)
            assert ranked(tab) == "1"
    tab.get_by_text("You have judged every item").wait_for()
    expander(tab, "Your recent judgements")
    settle(tab)
    screenshot(tab, f"labeling-4-done-{name}")


def agreement(admin) -> None:
    open_page(admin, "Agreement")  # the report shows as the page opens
    admin.get_by_test_id("stPlotlyChart").nth(2).wait_for()
    settle(admin)
    assert admin.get_by_text("Krippendorff's α (ordinal)").count() == 1
    screenshot(admin, "labeling-5-agreement")
    admin.get_by_role("heading", name="Gold items and speed").scroll_into_view_if_needed()
    table = admin.get_by_test_id("stDataFrame").last
    table.wait_for()
    for header in ("gold judged", "gold accuracy", "too fast"):
        assert table.get_by_text(header, exact=True).count() == 1, header
    settle(admin)
    screenshot(admin, "labeling-5a-gold-accuracy")


def leaderboard(admin) -> None:
    """The two sources' ratings with their intervals: in the table and as error bars on the chart."""
    open_page(admin, "Leaderboard")
    admin.get_by_test_id("stPlotlyChart").nth(1).wait_for()  # ratings and win-rate matrix
    settle(admin)
    table = admin.get_by_test_id("stDataFrame").first
    table.wait_for()
    assert table.get_by_text("95 % interval").count() == 1  # (a canvas grid: its header cells exist, hidden)
    assert admin.get_by_text("Two sources whose intervals overlap").count() == 1
    chart = admin.get_by_test_id("stPlotlyChart").first
    chart.get_by_text("Rating with its 95 % interval", exact=False).wait_for()
    assert chart.locator("g.errorbar").count() == 2, "one interval per source"
    screenshot(admin, "labeling-5b-leaderboard")


def export(admin, data_dir: Path) -> Path:
    open_page(admin, "Preference data")
    admin.get_by_text("best-vs-rest", exact=True).click()
    admin.get_by_text("Add a margin column (rank gap)").click()
    settle(admin)
    admin.get_by_role("button", name="Export").click()
    admin.get_by_text("Dataset for reward-model and DPO jobs").wait_for()
    settle(admin)
    screenshot(admin, "labeling-6-export")
    out = data_dir / "datasets" / "preferences" / "browser-round-pairs"
    assert admin.get_by_test_id("stCode").inner_text().strip() == str(out)
    return out


def test_campaign_two_annotators_agreement_and_export(browser_studio, monkeypatch):
    admin = browser_studio.new_tab()
    sign_up(admin)
    create_campaign(admin)
    create_annotator(admin, "ann")

    ann, ben = browser_studio.new_tab(), browser_studio.new_tab()
    sign_in(ann, "ann", PASSWORD)
    sign_up(ben, "ben", PASSWORD)  # not the first account: an annotator
    annotate(ann, "ann", [["1", "2", "3"], ["3", "2", "1"], ["1", "1", "2"]])
    annotate(ben, "ben", [["1", "2", "3"], ["2", "1", "3"], ["1", "2", "F"]], undo_once=True,
             bad_first=["3", "3", "1"])

    agreement(admin)
    from backend.db.engine import session_scope
    from labeling import gold

    with session_scope(url=browser_studio.db_url) as s:  # what the Agreement page's gold table showed
        checks = {a["annotator"]: a for a in gold.annotator_checks(s, "browser-round")}
    assert checks["ann"]["gold_judged"] == checks["ben"]["gold_judged"] == 1
    assert checks["ann"]["gold_accuracy"] in (0.0, 1.0)
    leaderboard(admin)
    folder = export(admin, browser_studio.data_dir)
    import datasets

    from backend.data.datasets_io import load_rows
    from backend.settings import reset_settings_cache

    monkeypatch.setenv("STUDIO_ALLOWED_PATHS", str(browser_studio.data_dir))  # this process reads the server's data
    reset_settings_cache()
    loaded = datasets.load_dataset("json", data_files={p.stem: str(p) for p in folder.glob("*.jsonl")})
    assert set(loaded) == {"train", "test"}
    assert loaded["train"].column_names == ["prompt", "chosen", "rejected", "margin"]
    rows = load_rows(str(folder), "train", required=["prompt", "chosen", "rejected"])  # how jobs read it
    assert rows and all(r["chosen"] != r["rejected"] and r["margin"] >= 1 for r in rows)
    prompts_train = {r["prompt"] for r in loaded["train"]}
    assert not prompts_train & {r["prompt"] for r in loaded["test"]}  # split by prompt
