"""The playground as a new user tries it, in headless chromium against a real server (tiny model, offline).

Sign up (admin) → set every decoding control → watch the next-token chart change → build a few-shot prompt
from retrieved examples and generate → upload a document and answer with citations → best of three by a reward
→ compare three variants side by side → send them to a labeling campaign. Screenshots land in ``test-artifacts/playground-*.png``.
"""

import re

import pytest
from browser_support import (  # noqa: F401 (browser_studio is a fixture)
    browser_studio,
    choose,
    expander,
    open_page,
    screenshot,
    settle,
    sign_up,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(browser_studio):  # noqa: F811 (the imported fixture)
    tab = browser_studio.new_tab()
    sign_up(tab)  # the first account: the admin
    tab.get_by_role("button", name="Generate").wait_for()
    settle(tab)
    return tab


def number(page, label: str, value: int) -> None:
    box = page.get_by_role("spinbutton", name=label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def nudge(page, label: str, steps: int) -> None:
    """Move a slider with the keyboard (what a user does for exact values)."""
    thumb = page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider")
    thumb.focus()
    for _ in range(abs(steps)):
        thumb.press("ArrowRight" if steps > 0 else "ArrowLeft")
    settle(page)


def radio(page, group: str, option: str) -> None:
    page.get_by_test_id("stRadio").filter(has_text=group).get_by_text(option, exact=True).click()
    settle(page)


def pick(page, label: str, option: str) -> None:
    """Pick from a long selectbox by typing (its option list is virtualised: far options are not in the page)."""
    choose(page, label, option, type_first=True)
    settle(page)


def switch_on(page, label: str) -> None:
    """Turn a toggle on and make sure it took: a click that lands while the expander above it is still opening
    (or a rerun is repainting it) can miss, so look at the switch itself rather than trusting the click."""
    toggle = page.get_by_test_id("stCheckbox").filter(has_text=label)
    switch = toggle.locator("input")
    for _ in range(3):
        if switch.is_checked():
            break
        toggle.get_by_text(label).click()
        settle(page)
    assert switch.is_checked(), f"the toggle '{label}' did not turn on"


def legend(chart) -> list[str]:
    return chart.locator("g.legend text.legendtext").evaluate_all("els => els.map(e => e.textContent)")


def test_playground_walk(page, browser_studio):  # noqa: F811
    try:
        walk(page, browser_studio)
    except Exception:
        screenshot(page, "playground-failure")  # what the user saw
        raise


def walk(page, studio) -> None:
    # every decoding control
    choose(page, "Preset", "creative")
    settle(page)
    radio(page, "Decoding", "Sampling")
    nudge(page, "Temperature", -6)  # 1.1 → 0.8
    nudge(page, "Top-p", -1)
    nudge(page, "Repetition penalty", 1)
    number(page, "Top-k", 40)
    number(page, "Max new tokens", 12)
    number(page, "Seed (0 = random)", 7)
    number(page, "Completions", 1)
    nudge(page, "Min-p", 2)
    nudge(page, "Typical-p", -1)
    nudge(page, "Frequency penalty", 3)
    nudge(page, "Presence penalty", 2)
    number(page, "Min new tokens", 2)
    number(page, "No-repeat n-gram size", 3)
    stops = page.get_by_role("textbox", name="Stop sequences (one per line; \\n for a newline)", exact=True)
    stops.fill("Human:\n\\n\\n")
    stops.press("Control+Enter")
    prompt = page.get_by_role("textbox", name="Prompt", exact=True)
    prompt.fill("I like to eat")
    prompt.press("Control+Enter")
    settle(page)

    # the next-token view follows the controls
    expander(page, "Next-token view: what the decoding controls do")
    switch_on(page, "Show the model's next-token distribution for this prompt")
    charts = page.get_by_test_id("stPlotlyChart")
    charts.nth(1).wait_for()
    before = legend(charts.nth(1))
    assert "After top-k" in before and "After temperature" in before
    number(page, "Top-k", 0)
    after = legend(page.get_by_test_id("stPlotlyChart").nth(1))
    assert "After top-k" not in after and "After top-p" in after
    page.get_by_test_id("stPlotlyChart").nth(1).scroll_into_view_if_needed()
    screenshot(page, "playground-1-next-token")

    # few-shot prompt from examples retrieved by similarity
    expander(page, "Template, examples and documents")
    pick(page, "Template", "sentiment")
    number(page, "Examples (shots)", 1)
    radio(page, "Examples from", "Typed by hand")
    radio(page, "Which examples", "Most similar to the input (embeddings + faiss)")
    typed = page.get_by_role("textbox", name="Examples (one JSON object per line)", exact=True)
    typed.fill('{"review": "The pizza was cold and late.", "sentiment": "Negative"}\n'
               '{"review": "The movie was a joy from start to end.", "sentiment": "Positive"}')
    typed.press("Control+Enter")
    prompt.fill("What a wonderful film!")
    prompt.press("Control+Enter")
    settle(page)
    page.get_by_text(re.compile(r"Prompt preview · sentiment · one-shot")).click()
    preview = page.get_by_test_id("stCode").filter(has_text="Classify this review").first
    assert "joy from start to end" in preview.inner_text() and "pizza" not in preview.inner_text()
    page.get_by_text(re.compile("Context window:")).wait_for()
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Tokens/s").first.wait_for()
    settle(page)
    assert page.locator(".st-key-pg-output").inner_text().strip()
    screenshot(page, "playground-2-few-shot")

    # a document collection, then an answer with its sources
    open_page(page, "Documents")
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        [{"name": "penguins.md", "mimeType": "text/markdown",
          "buffer": b"# Penguins\n\nEmperor penguins breed in Antarctica during the winter."},
         {"name": "etna.txt", "mimeType": "text/plain", "buffer": b"Mount Etna in Sicily is an active volcano."}])
    settle(page)
    page.get_by_role("button", name="Upload and index").click()
    page.get_by_text(re.compile("It holds 2 chunks now")).wait_for()
    query = page.get_by_role("textbox", name="Question", exact=True)
    query.fill("Where do penguins breed?")
    query.press("Enter")
    page.get_by_text("[1] penguins.md #1").wait_for()
    screenshot(page, "playground-3-documents")

    open_page(page, "Playground")
    expander(page, "Template, examples and documents")
    page.get_by_text("Prompt preview · sentiment · one-shot").wait_for()  # the settings survived the visit
    pick(page, "Template", "(none: send the prompt as typed)")
    pick(page, "Retrieve from documents", "docs")
    number(page, "Chunks to retrieve (k)", 1)
    prompt = page.get_by_role("textbox", name="Prompt", exact=True)
    prompt.fill("Where do penguins breed?")
    prompt.press("Control+Enter")
    settle(page)
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Sources", exact=True).wait_for()
    page.get_by_text(re.compile(r"\[1\] penguins.md #1")).first.wait_for()
    screenshot(page, "playground-4-rag")

    # best of three by the packaged toxicity score: scored, ordered best first, the best one marked
    pick(page, "Score with", "toxicity (packaged)")
    settle(page)
    switch_on(page, "Best of n")
    number(page, "Completions", 3)
    page.get_by_role("button", name="Generate").click()
    page.get_by_text(re.compile(r"best of 3 by toxicity \(packaged\)")).wait_for()
    settle(page)
    screenshot(page, "playground-4b-best-of-n")

    # three variants side by side, then to labeling
    open_page(page, "Compare")
    box = page.get_by_role("textbox", name="Input", exact=True)
    box.fill("I like to eat")
    box.press("Control+Enter")
    settle(page)
    page.get_by_role("button", name="Run all variants").click()
    page.get_by_role("heading", name=re.compile(r"Run #\d+")).wait_for()
    settle(page)
    assert page.get_by_text("Tokens/s").count() >= 3
    screenshot(page, "playground-5-compare")
    name = page.get_by_role("textbox", name="Campaign name", exact=True)
    name.fill("three variants")
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_text(re.compile("Campaign three variants created")).wait_for()
    settle(page)
    screenshot(page, "playground-6-sent-to-labeling")

    from sqlalchemy import select

    from backend.db.engine import session_scope
    from backend.db.tables import Campaign, Completion

    with session_scope(url=studio.db_url) as s:
        campaign = s.scalars(select(Campaign).where(Campaign.name == "three variants")).one()
        assert campaign.k == 3 and len(campaign.sources) == 3
        assert len(s.scalars(select(Completion).where(Completion.item_id.is_not(None))).all()) == 3
