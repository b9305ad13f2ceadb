"""Honest outcomes: every compared mean with its 95 % interval and n, every delta against the baseline paired on the
same prompts with interval, p (Holm when several models face one baseline) and a verdict — in the services, on the
Evaluation page (AppTest), in `studio eval compare` and in the "How many examples do I need?" helper."""

import json

import pytest
from page_support import page, texts
from sqlalchemy import event
from test_cli import run_cli

from backend.db.engine import get_engine, session_scope
from backend.db.tables import EvalResult, EvalRun, ModelRecord
from backend.errors import StudioError
from backend.metrics import stats
from backend.settings import get_settings
from services import eval_scores, evaluation

PROMPTS, SAMPLES = 30, 2


def base_rouge(i: int, j: int) -> float:
    return 0.2 + 0.01 * (i % 10) + (0.004 if j else -0.004)


def add_run(s, name: str, method: str | None, rouge_shift: float, tox_shift: float, *, wobble: float = 0.0,
            perplexity: float | None = None, reverse: bool = False) -> int:
    """A run of ``name`` on 30 prompts × 2 samples: ROUGE-1 and toxicity = the base's + a shift (+ a ± wobble that
    alternates by prompt, i.e. noise around no change)."""
    record = ModelRecord(name=name, kind="full" if method else "base", source="job" if method else "local",
                         path=f"/models/{name}", meta={"method": method} if method else {})
    s.add(record)
    s.flush()
    cells = [(i, j) for i in range(PROMPTS) for j in range(SAMPLES)]
    rows = [(base_rouge(i, j) + rouge_shift + (wobble if i % 2 else -wobble),
             0.3 + 0.01 * (i % 5) + tox_shift, i) for i, j in cells]
    metrics = {"rouge1": sum(r for r, _, _ in rows) / len(rows), "toxicity": sum(t for _, t, _ in rows) / len(rows),
               "bleu": 0.05} | ({"perplexity": perplexity} if perplexity else {})
    run = EvalRun(model_id=record.id, model_name=name, dataset="demo:dialogsum", split="test",
                  n_examples=len(rows), metrics=metrics)
    s.add(run)
    s.flush()
    order = list(reversed(rows)) if reverse else rows  # another order: the pairing is by prompt, not by position
    s.add_all(EvalResult(eval_run_id=run.id, idx=k, input=f"Summarise dialogue {i}.", reference=f"summary {i}",
                         prediction=f"{name} {k}", scores={"rouge1": r, "toxicity": t, "length_words": 10 + i % 3})
              for k, (r, t, i) in enumerate(order))
    s.flush()
    return run.id


@pytest.fixture
def runs(studio_env):
    with session_scope(write=True) as s:
        return {"base": add_run(s, "base", None, 0, 0, perplexity=12.0),
                "lora": add_run(s, "lora-ft", "lora", 0.1, -0.05, perplexity=9.0, reverse=True),
                "full": add_run(s, "full-ft", "full", 0.0, 0.0, wobble=0.01, perplexity=11.5)}


def test_compare_runs_intervals_paired_deltas_holm_and_verdicts(runs):
    with session_scope() as s:
        rows = {r["model"]: r for r in evaluation.compare_runs(s, list(runs.values()))}
    base, lora, full = rows["base"], rows["lora-ft"], rows["full-ft"]
    interval = base["intervals"]["rouge1"]
    assert (interval["n"], interval["n_obs"]) == (PROMPTS, PROMPTS * SAMPLES) and base["n_prompts"] == PROMPTS
    assert interval["low"] < interval["mean"] < interval["high"] and interval["mean"] == pytest.approx(
        base["rouge1"])
    # LoRA: +0.1 ROUGE-1 and −0.05 toxicity on every prompt (its rows stored in reverse order: paired by prompt)
    up, down = lora["vs_baseline"]["rouge1"], lora["vs_baseline"]["toxicity"]
    assert up["delta"] == pytest.approx(0.1) and up["low"] > 0 and up["significant"] and up["verdict"] == "better"
    assert up["paired_by"] == "prompt" and up["n"] == PROMPTS
    assert down["delta"] == pytest.approx(-0.05) and down["verdict"] == "better"  # lower toxicity is better
    assert lora["delta_rouge1"] == pytest.approx(0.1) and lora["change_rouge1"] == pytest.approx(0.1 / base["rouge1"])
    # full: ±0.01 around no change — the interval covers 0: noise
    same = full["vs_baseline"]["rouge1"]
    assert same["low"] < 0 < same["high"] and not same["significant"] and same["verdict"] == "noise"
    # two models against one baseline: Holm-adjusted p-values
    assert up["correction"] == "Holm" and up["p_adjusted"] >= up["p_value"]
    assert base["vs_baseline"]["rouge1"] is None and base["delta_rouge1"] == 0
    # length has no better side; perplexity is one number per run: no interval invented
    assert lora["vs_baseline"]["length_words"]["verdict"] == "noise"
    assert lora["intervals"]["perplexity"] is None and lora["vs_baseline"]["perplexity"] is None
    assert lora["delta_perplexity"] == pytest.approx(-3.0)


def test_per_example_scores_are_read_once_per_call(runs):
    statements = []

    def count(conn, cursor, statement, *args):
        if "FROM eval_results" in statement:
            statements.append(statement)

    engine = get_engine(get_settings().url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope() as s:
            evaluation.compare_runs(s, list(runs.values()))
        assert len(statements) == 1
        statements.clear()
        with session_scope() as s:
            evaluation.before_after(s, list(runs.values()))
        assert len(statements) == 1
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_before_after_and_toxicity_summary_carry_intervals(runs):
    with session_scope() as s:
        rows = {r["model"]: r for r in evaluation.before_after(s, [runs["lora"], runs["base"]])}
        summary = {r["model"]: r for r in evaluation.toxicity_summary(s, [runs["base"], runs["lora"], runs["full"]])}
    lora = rows["lora-ft"]
    assert lora["intervals"]["toxicity"]["n"] == PROMPTS and lora["vs_baseline"]["toxicity"]["verdict"] == "better"
    assert lora["delta_toxicity_mean"] == pytest.approx(-0.05)
    assert lora["vs_baseline"]["rouge1"]["verdict"] == "better"
    assert lora["vs_baseline"]["toxicity"]["correction"] is None  # one model against the baseline: no Holm
    assert lora["intervals"]["reward"] is None and lora["delta_reward_mean"] is None  # no reward model: None
    tox = summary["lora-ft"]
    assert (tox["n"], tox["n_obs"]) == (PROMPTS, PROMPTS * SAMPLES) and tox["low"] < tox["mean"] < tox["high"]
    assert tox["delta"] == pytest.approx(-0.05) and tox["delta_high"] < 0 and tox["verdict"] == "better"
    assert tox["p_adjusted"] is not None  # two runs against the baseline: Holm
    assert summary["base"]["baseline"] and summary["base"]["delta"] is None
    assert summary["full-ft"]["verdict"] == "noise"


def test_compare_pair_shape_and_errors(runs):
    with session_scope() as s:
        out = evaluation.compare_pair(s, runs["base"], runs["lora"], ["rouge1", "perplexity"])
        everything = evaluation.compare_pair(s, runs["base"], runs["lora"])
        with pytest.raises(StudioError, match="No metric nope.*available: rouge1"):
            evaluation.compare_pair(s, runs["base"], runs["lora"], ["nope"])
        with pytest.raises(StudioError, match="two different runs"):
            evaluation.compare_pair(s, runs["base"], runs["base"])
    assert out["a"] == {"run": runs["base"], "model": "base", "method": "base", "n": 60, "n_prompts": 30}
    rouge, ppl = out["metrics"]
    assert rouge["metric"] == "rouge1" and rouge["lower_is_better"] is False and rouge["note"] is None
    assert set(rouge["a"]) >= {"mean", "low", "high", "n", "n_obs"} and rouge["delta"]["verdict"] == "better"
    assert ppl == {"metric": "perplexity", "lower_is_better": True, "a": {"value": 12.0}, "b": {"value": 9.0},
                   "difference": -3.0, "delta": None, "note": "no per-example scores"}
    assert rouge["difference"] == pytest.approx(rouge["delta"]["delta"])
    assert [m["metric"] for m in everything["metrics"]][:3] == ["rouge1", "bleu", "toxicity"]
    assert out["method"] == stats.METHOD


def test_cli_eval_compare_text_and_json(runs, capsys):
    a, b = str(runs["base"]), str(runs["lora"])
    code, out, _ = run_cli(["eval", "compare", a, b, "--metric", "rouge1", "toxicity", "--metric", "perplexity"],
                           capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"A: run #{a} base (base), 30 prompts, 60 completions — the baseline")
    rouge = next(line for line in lines if line.startswith("rouge1"))
    assert "+0.100 [+0.100, +0.100]" in rouge and rouge.endswith("better")
    assert next(line for line in lines if line.startswith("toxicity")).endswith("better")
    assert "-3.000 (no interval)" in out and "no per-example scores" in out and "2,000 resamples" in out
    code, out, _ = run_cli(["eval", "compare", a, b, "--metric", "rouge1", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and list(data) == ["a", "b", "method", "metrics"]
    delta = data["metrics"][0]["delta"]
    assert delta["delta"] == pytest.approx(0.1) and delta["significant"] and delta["p_value"] < 0.01
    code, _, err = run_cli(["eval", "compare", a, "999"], capsys)
    assert code == 2 and "no evaluation run 999" in err


def test_prompts_needed_from_a_pilot_run(runs):
    with session_scope() as s:
        need = eval_scores.prompts_needed(s, runs["base"], "rouge1", 0.01, samples_per_prompt=2)
        assert eval_scores.per_example_metrics(s, runs["base"]) == ["length_words", "rouge1", "toxicity"]
        with pytest.raises(StudioError, match="no per-example 'bleu' scores"):
            eval_scores.prompts_needed(s, runs["base"], "bleu", 0.01)
        with pytest.raises(StudioError, match="above 0"):
            eval_scores.prompts_needed(s, runs["base"], "rouge1", 0)
    values = [base_rouge(i, j) for i in range(PROMPTS) for j in range(SAMPLES)]
    groups = [f"Summarise dialogue {i}." for i in range(PROMPTS) for _ in range(SAMPLES)]
    assert need["prompts"] == stats.prompts_needed(values, groups, 0.01, samples_per_prompt=2)
    assert need["completions"] == 2 * need["prompts"] and need["pilot_prompts"] == PROMPTS
    assert f"About {need['prompts']:,} prompts × 2 sample(s)" in need["explanation"]


# --- the page -------------------------------------------------------------------------------------------------

@pytest.fixture
def page_runs(studio):
    with session_scope(write=True) as s:
        return {"base": add_run(s, "base", None, 0, 0, perplexity=12.0),
                "lora": add_run(s, "lora-ft", "lora", 0.1, -0.05, perplexity=9.0),
                "full": add_run(s, "full-ft", "full", 0.0, 0.0, wobble=0.01, perplexity=11.5)}


def test_compare_view_shows_intervals_marks_noise_and_error_bars(page_runs):
    at = page("page_evaluation.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["label"]) == ["base · base (zero-shot) (#1)", "lora-ft · LoRA (#2)",
                                    "full-ft · full fine-tuning (#3)"]
    assert table["rouge1"].iloc[0].startswith("0.245 [0.2") and list(table["n_prompts"]) == [30, 30, 30]
    assert table["ci_rouge1"].iloc[0] == "baseline"
    assert table["ci_rouge1"].iloc[1].startswith("[+0.100, +0.100] ▲ better · p (Holm) = ")
    assert " noise · p (Holm) = " in table["ci_rouge1"].iloc[2]
    assert table["ci_toxicity"].iloc[1].startswith("[-0.050, -0.050] ▼ better")
    assert table["perplexity"].iloc[1] == "9.00 (no per-example scores)"
    assert table["ci_perplexity"].iloc[1] == "no per-example scores"
    scores, deltas = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    bars = scores["data"][0]
    assert bars["error_y"]["array"][0] > 0 and bars["error_y"]["arrayminus"][0] > 0  # rouge1's interval
    assert "Change against the baseline" in deltas["layout"]["title"]["text"]
    caption = texts(at.caption)
    assert "30 prompts (60 completions)" in caption and "2,000 resamples, seed 0" in caption and "Holm" in caption
    # corpus BLEU only (no sentence BLEU per example here): the value, no interval, and no note about one
    assert table["bleu"].iloc[0] == "0.050 (no per-example scores)" and "mean sentence BLEU" not in caption


def test_sample_size_helper_on_the_form(page_runs):
    at = page("page_evaluation.py")
    at.selectbox(key="ev-need-run").set_value(page_runs["base"])
    at.run()
    assert at.selectbox(key="ev-need-metric").value == "rouge1"
    at.number_input(key="ev-need-effect").set_value(0.01)
    at.number_input(key="ev-need-samples").set_value(2)
    at.run()
    assert not at.exception
    with session_scope() as s:
        need = eval_scores.prompts_needed(s, page_runs["base"], "rouge1", 0.01, 2)
    assert f"**{need['prompts']:,} prompts** × 2" in texts(at.markdown)
    assert need["explanation"] in texts(at.caption)
