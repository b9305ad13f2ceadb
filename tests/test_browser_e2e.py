"""The studio's main flows in headless chromium, against a real server and a real background worker.

A temp data dir holds a fresh database with the tiny random model registered as ``tiny`` (the default
model), so the walk is offline and takes a couple of minutes on a CPU: sign-up (admin) → Playground → Jobs (a
3-step LoRA run) → Evaluation (the base model and the new adapter on 5 examples). Labeling has its own walk
(``test_browser_labeling.py``). Screenshots of each page land in ``test-artifacts/``.

Needs Debian's chromium (``make browser``); Playwright drives it, no browser download.
"""

import time

import pytest
from browser_support import (
    JOB_TIMEOUT_MS,
    choose,
    open_page,
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
    screenshot(page, "e2e-4-jobs")
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
    screenshot(page, "e2e-5-evaluation")


def test_studio_main_flows(page):
    playground(page)
    adapter = jobs(page)
    evaluation(page, adapter)
