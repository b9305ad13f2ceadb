"""Supervised tuning and evaluation in headless chromium, against a real server and a real background worker.

On a fresh data dir with the tiny random model (``tiny``, the default): sign up (admin) → Jobs: build a LoRA SFT
job in the form, see the trainable-parameter estimate and the formatted examples, run 3 steps, watch the curves
→ Evaluation: the base model and the new adapter on 5 test examples, the compare dashboard, the per-example viewer,
toxicity and training curves → Models: the adapter's lineage, merged and exported → both in the Playground's
model picker → Calculators → a job asking for a GPU waits, with its reason on the Jobs page. Screenshots of each
step land in ``test-artifacts/training-*.png``.
"""

import time

import pytest
from browser_support import (  # noqa: F401 (browser_studio is a fixture)
    JOB_TIMEOUT_MS,
    browser_studio,
    choose,
    expander,
    open_page,
    screenshot,
    select,
    settle,
    sign_up,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(browser_studio):  # noqa: F811 (the fixture imported above)
    tab = browser_studio.new_tab()
    sign_up(tab)  # the first account: the admin
    return tab


def fill(page, label: str, value: str) -> None:
    box = page.get_by_role("spinbutton", name=label, exact=True)
    box.fill(value)
    box.press("Enter")
    settle(page)


def metric(page, label: str) -> str:
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue").inner_text()


def train(page) -> str:
    """Build a 3-step LoRA job from the form, follow it to the end; returns the adapter's name."""
    open_page(page, "Jobs")
    expander(page, "New job")
    choose(page, "Start from preset", "sft-lora-tiny-cpu")
    settle(page)
    page.get_by_text("Trainable parameters").wait_for()
    full = int(metric(page, "Total parameters").replace(",", ""))
    trainable = int(metric(page, "Trainable parameters").replace(",", ""))
    assert 0 < trainable < full, (trainable, full)
    fill(page, "Rank r", "8")  # the preset's 64 → 8
    assert int(metric(page, "Trainable parameters").replace(",", "")) == trainable // 8  # r·(d+k): linear in r
    expander(page, "Training controls")
    fill(page, "max_steps", "3")
    expander(page, "Preview formatted examples")
    page.get_by_text("Example 3 ·").wait_for()
    settle(page)
    screenshot(page, "training-1-sft-form")
    page.get_by_role("button", name="Queue job").click()
    page.get_by_text("Queued job").wait_for()
    page.get_by_test_id("stMetricValue").filter(has_text="succeeded").wait_for(timeout=JOB_TIMEOUT_MS)
    page.get_by_text("Trained model registered as").wait_for()
    adapter = page.get_by_text("Trained model registered as").locator("strong").inner_text()
    expander(page, "New job")  # fold the form so the job panel is in view
    time.sleep(1)  # the expander's animation
    chart = page.get_by_test_id("stPlotlyChart").first
    for panel in ("loss", "learning rate", "gradient norm", "tokens/s (measured)"):
        chart.get_by_text(panel, exact=True).first.wait_for()
    screenshot(page, "training-2-job-curves")
    return adapter


def evaluate(page, adapter: str) -> None:
    open_page(page, "Evaluation")
    page.get_by_text("No evaluation yet").wait_for()
    expander(page, "New evaluation")
    models = page.get_by_test_id("stMultiSelect").filter(has_text="Models and adapters")
    for name in ("tiny", adapter):
        select(page, models, name)
    page.keyboard.press("Escape")
    fill(page, "Test examples", "5")
    page.get_by_role("button", name="Run evaluation").click()
    page.get_by_text("Queued evaluation job(s)").wait_for()
    chart = page.get_by_test_id("stPlotlyChart").first
    chart.wait_for(timeout=JOB_TIMEOUT_MS)
    runs = page.get_by_test_id("stMultiSelect").filter(has_text="Runs to compare")
    runs.get_by_text(f"#2 {adapter}").wait_for(timeout=JOB_TIMEOUT_MS)  # both runs picked once both finished
    settle(page)
    page.get_by_test_id("stPlotlyChart").nth(1).get_by_text("Change against the baseline").wait_for()
    expander(page, "New evaluation")
    time.sleep(1)
    screenshot(page, "training-3-compare")
    views = page.get_by_test_id("stRadio").filter(has_text="Per example")
    views.get_by_text("Per example").click()
    page.get_by_text("examples: B scores higher on").wait_for()
    screenshot(page, "training-4-per-example")
    views.get_by_text("Toxicity").click()
    page.get_by_text("Toxic above").wait_for()
    screenshot(page, "training-5-toxicity")
    views.get_by_text("Training curves").click()
    page.get_by_test_id("stMultiSelect").filter(has_text="Training jobs").wait_for()
    page.get_by_test_id("stPlotlyChart").first.get_by_text("gradient norm", exact=True).first.wait_for()
    screenshot(page, "training-6-curves")


def models(page, adapter: str) -> None:
    open_page(page, "Models & adapters")
    choose(page, "Model", adapter)
    settle(page)
    page.get_by_text("training data").wait_for()
    page.get_by_role("button", name="Merge and export").click()
    page.get_by_text(f"Merged into {adapter}-merged").wait_for(timeout=JOB_TIMEOUT_MS)
    settle(page)
    screenshot(page, "training-7-models")


def playground_lists(page, adapter: str) -> None:
    """The trained adapter and the merged model are in the Playground's model picker."""
    open_page(page, "Playground")
    page.get_by_test_id("stSelectbox").filter(has_text="Model").first.click()
    for name in (adapter, f"{adapter}-merged"):
        page.get_by_role("option", name=name, exact=True).wait_for()
    page.keyboard.press("Escape")
    settle(page)


def calculators(page) -> None:
    open_page(page, "Calculators")
    assert metric(page, "To train (weights + gradients + Adam + activations)") == "24.00 GB"
    page.get_by_role("tab", name="LoRA parameters").click()
    settle(page)
    assert metric(page, "LoRA r·(d+k)") == "4,608"
    screenshot(page, "training-8-calculators-lora")
    page.get_by_role("tab", name="Compute budget").click()
    settle(page)
    screenshot(page, "training-9-calculators-compute")


def gpu_job_waits(page) -> None:
    """A job asking for a GPU on this CPU-only machine is queued, and the page says what it waits for."""
    open_page(page, "Jobs")
    expander(page, "New job")
    choose(page, "Start from preset", "sft-lora-tiny-cpu")
    settle(page)
    expander(page, "Memory and hardware")
    page.get_by_test_id("stRadio").filter(has_text="Run on").get_by_text("cuda", exact=True).click()
    settle(page)
    page.get_by_text("no live worker has a GPU").wait_for()  # warned before launch
    page.get_by_role("button", name="Queue job").click()
    page.get_by_text("Queued job").wait_for()
    expander(page, "New job")
    waiting = page.get_by_test_id("stAlertContentWarning").filter(has_text="waiting for a worker with 1 GPU")
    waiting.wait_for()
    assert "none registered (live workers: cpu only)" in waiting.inner_text()
    time.sleep(4)  # a worker poll later it still waits, and says why
    assert waiting.count() == 1
    screenshot(page, "training-10-waiting-for-gpu")


def test_supervised_tuning_and_evaluation(page):
    try:
        adapter = train(page)
        evaluate(page, adapter)
        models(page, adapter)
        playground_lists(page, adapter)
        calculators(page)
        gpu_job_waits(page)
    except Exception:
        page.screenshot(path="test-artifacts/training-failure.png", full_page=True)  # what the page showed
        raise
