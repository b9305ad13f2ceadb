"""The Playground's "Score with" and best-of-n, and Compare's scores per column, under AppTest (tiny models)."""

import re
import shutil

import pytest
from page_support import APP, TIMEOUT, button, count, page, texts
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from test_reward_scoring import build_reward_model, register_reward_model

from backend.db.engine import session_scope
from backend.db.tables import Completion, PlaygroundRun
from services import reward_scoring, runs
from services.reward_scoring import TOXICITY

SCORED = re.compile(r"^Completion (\d) · .* · reward (-?\d+\.\d{3})( · .*best of (\d) by (.+)\*\*)?$")


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    return at


def sampled(at: AppTest, n: int) -> AppTest:
    at.selectbox(key="pg-preset").select("creative").run()
    at.text_area(key="pg-prompt").input("Tell me about cake.")
    at.number_input(key="pg-max").set_value(6)
    at.number_input(key="pg-seed").set_value(4)
    at.number_input(key="pg-n").set_value(n)
    return at


def scored_captions(at: AppTest) -> list[re.Match]:
    return [m for line in texts(at.caption).splitlines() if (m := SCORED.match(line))]


def test_best_of_n_by_toxicity_orders_marks_saves_and_reopens(studio):
    at = ok(page("page_playground.py"))
    assert at.selectbox(key="pg-score").options == ["none", TOXICITY] and at.toggle(key="pg-bon").disabled
    sampled(at, 3)
    at.selectbox(key="pg-score").select(TOXICITY).run()
    at.toggle(key="pg-bon").set_value(True)
    button(at, "Generate").click().run()
    ok(at)
    shown = scored_captions(at)
    assert len(shown) == 3 and sorted(int(m[1]) for m in shown) == [1, 2, 3]
    values = [float(m[2]) for m in shown]
    assert values == sorted(values, reverse=True)  # best first
    assert [int(m[1]) for m in shown] != [1, 2, 3]  # (this seed's best is not the first generated)
    assert shown[0].group(4, 5) == ("3", TOXICITY) and not any(m[3] for m in shown[1:])  # the chosen one is marked
    assert "Scored with toxicity (packaged), best first." in texts(at.caption)
    with session_scope() as s:
        run = s.scalars(select(PlaygroundRun)).one()
        rows = s.scalars(select(Completion).order_by(Completion.id)).all()
        saved = run.meta["reward"]
    assert saved["source"] == TOXICITY and saved["best_of_n"] is True
    in_generation_order = [float(m[2]) for m in sorted(shown, key=lambda m: int(m[1]))]
    assert [saved["scores"][str(r.id)] for r in rows] == pytest.approx(in_generation_order, abs=5e-4)
    at.run()  # a rerun shows the scored run again
    assert [float(m[2]) for m in scored_captions(at)] == values

    runs = ok(page("page_runs.py"))  # the Runs page shows the saved scores
    assert [float(m[2]) for m in scored_captions(runs)] == values
    button(runs, "Reopen").click().run()
    reopened = AppTest.from_file(str(APP / "page_playground.py"), default_timeout=TIMEOUT)
    reopened.session_state["pg-reopen"] = runs.session_state["pg-reopen"]
    ok(reopened.run())
    assert reopened.selectbox(key="pg-score").value == TOXICITY and reopened.toggle(key="pg-bon").value
    assert [float(m[2]) for m in scored_captions(reopened)] == values


def test_streamed_completion_scored_by_a_registered_reward_model(studio, tiny_model_dir, tmp_path):
    reward_scoring.clear_cache()
    register_reward_model("tiny-rm", build_reward_model(tmp_path / "rm", tiny_model_dir))
    at = page("page_playground.py")
    assert at.selectbox(key="pg-score").options == ["none", TOXICITY, "tiny-rm"]
    assert "tiny-rm" not in at.selectbox(key="pg-model").options  # a scorer, not a generator
    sampled(at, 1)
    at.selectbox(key="pg-score").select("tiny-rm").run()
    button(at, "Generate").click().run()
    ok(at)
    with session_scope() as s:
        run = runs.get_run(s, s.scalars(select(PlaygroundRun.id)).one())
        col = run["columns"][0]
        expected = reward_scoring.score_with(reward_scoring.resolve_source(s, "tiny-rm"), [col["text"]],
                                             [col["completions"][0]["text"]])
    assert col["completions"][0]["score"] == pytest.approx(expected[0])
    assert f"Reward {expected[0]:.3f}" in texts(at.caption).splitlines()
    reward_scoring.clear_cache()


def test_missing_reward_model_is_a_message_before_generating(studio, tiny_model_dir, tmp_path):
    folder = build_reward_model(tmp_path / "rm", tiny_model_dir)
    register_reward_model("gone-rm", folder)
    at = page("page_playground.py")
    sampled(at, 2)
    at.selectbox(key="pg-score").select("gone-rm").run()
    shutil.rmtree(folder)
    button(at, "Generate").click().run()
    assert not at.exception and "folder of reward model 'gone-rm' is missing" in texts(at.error)
    assert count(PlaygroundRun) == 0  # nothing generated for nothing


def test_compare_shows_rewards_per_column(studio):
    at = ok(page("page_compare.py"))
    at.text_area(key="cmp-input").input("I like to eat")
    for i in range(3):
        at.number_input(key=f"cmp{i}-max").set_value(5)
    at.selectbox(key="cmp-score").select(TOXICITY)
    button(at, "Run all variants").click().run()
    ok(at)
    with session_scope() as s:
        run = runs.get_run(s, s.scalars(select(PlaygroundRun.id)).one())
    summary = at.dataframe[0].value
    assert list(summary["reward (best)"]) == pytest.approx([c["reward"]["best"] for c in run["columns"]])
    assert list(summary["reward (mean)"]) == pytest.approx([c["reward"]["mean"] for c in run["columns"]])
    assert all(0 <= c["score"] <= 1 for col in run["columns"] for c in col["completions"])
    assert "Rewards by toxicity (packaged) (higher is better)." in texts(at.caption)
