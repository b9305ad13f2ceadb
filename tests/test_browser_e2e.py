"""The studio's main flows in headless chromium, against a real server and a real background worker.

A temp data dir holds a fresh database with the tiny random model registered as ``tiny`` (the default
model), so the walk is offline: sign-up (admin) → Playground. Labeling has its own walk
(``test_browser_labeling.py``); Jobs, Evaluation, Models and Calculators theirs (``test_browser_training.py``).
Screenshots of each page land in ``test-artifacts/``.

Needs Debian's chromium (``make browser``); Playwright drives it, no browser download.
"""


import pytest
from browser_support import (
    choose,
    screenshot,
    settle,
    sign_up,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(browser_studio):
    tab = browser_studio.new_tab()
    sign_up(tab)  # the first account: the admin
    return tab


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
    screenshot(page, "e2e-1-playground")


def test_studio_main_flows(page):
    playground(page)
