"""Every page under Streamlit's AppTest, on a fresh database with the tiny random model as the default.

Each page file is run on its own (``st.navigation`` lives in the entry script, tested separately). No worker
runs: jobs stay queued, and metrics and evaluation rows are inserted directly, as a worker would.
"""

from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from backend.db.engine import session_scope
from backend.db.tables import Campaign, Completion, EvalResult, EvalRun, Job, Ranking, User
from jobs import queue
from labeling import accounts

APP = Path(__file__).resolve().parent.parent / "app"
TIMEOUT = 60  # first model load and first plotly import can take a few seconds on a slow CPU


@pytest.fixture
def studio(tiny_model, monkeypatch):
    """A fresh studio whose default model is the tiny one."""
    from backend.settings import reset_settings_cache

    monkeypatch.setenv("STUDIO_DEFAULT_MODEL", "tiny")
    reset_settings_cache()
    yield tiny_model
    reset_settings_cache()


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(APP / name), default_timeout=TIMEOUT)
    return at.run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def count(table) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(table))


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


# --- entry script ----------------------------------------------------------------------------------

def test_entry_script_asks_to_sign_in_first(studio):
    at = page("studio_app.py")
    assert not at.exception
    assert [t.value for t in at.title] == [":material/login: Sign in to Loop Studio"]
    assert "No account exists yet" in texts(at.info)


def test_first_account_is_admin_and_sees_every_page(studio):
    at = page("studio_app.py")
    at.text_input(key="su-name").input("ada")
    at.text_input(key="su-password").input("correct horse")
    at.text_input(key="su-repeat").input("correct horse")
    button(at, "Create account and sign in").click().run()
    assert not at.exception
    assert at.session_state["user"]["role"] == "admin"
    assert [t.value for t in at.title] == [":material/chat: Playground"]
    assert "Signed in as ada (admin)" in texts(at.caption)


def test_sign_up_rejects_mismatched_passwords_and_creates_nobody(studio):
    at = page("page_sign_in.py")
    at.text_input(key="su-name").input("ada")
    at.text_input(key="su-password").input("correct horse")
    at.text_input(key="su-repeat").input("correct hose")
    button(at, "Create account and sign in").click().run()
    assert "The two passwords differ" in texts(at.error)
    assert count(User) == 0 and "user" not in at.session_state


def test_wrong_password_is_a_message(studio):
    with session_scope(write=True) as s:
        accounts.sign_up(s, "ada", "correct horse")
    at = page("page_sign_in.py")
    at.text_input(key="si-name").input("ada")
    at.text_input(key="si-password").input("wrong horse")
    button(at, "Sign in").click().run()
    assert not at.exception
    assert "Wrong name or password." in texts(at.error)
    assert "user" not in at.session_state


def test_annotator_sees_only_labeling(studio):
    with session_scope(write=True) as s:
        accounts.sign_up(s, "ada", "correct horse")  # the admin
        bob = accounts.public(accounts.sign_up(s, "bob", "correct horse"))
    at = AppTest.from_file(str(APP / "studio_app.py"), default_timeout=TIMEOUT)
    at.session_state["user"] = bob
    at.run()
    assert not at.exception
    assert bob["role"] == "annotator"
    assert [t.value for t in at.title] == [":material/low_priority: Labeling"]
    with pytest.raises(ValueError, match="Known pages: .*page_labeling.py'\\]"):
        at.switch_page("page_playground.py")  # not in an annotator's navigation: no way to open it


# --- playground ------------------------------------------------------------------------------------

def test_playground_renders(studio):
    at = page("page_playground.py")
    assert not at.exception
    assert at.selectbox(key="pg-model").value == "tiny"
    assert not button(at, "Generate").disabled
    assert "No runs yet." in texts(at.caption)


def test_playground_generates_shows_metrics_and_saves_run(studio):
    at = page("page_playground.py")
    at.selectbox(key="pg-preset").select("creative")  # sampling: the random model then writes visible tokens
    at.run()
    at.text_area(key="pg-prompt").input("Hello there")
    at.number_input(key="pg-max").set_value(8)
    at.number_input(key="pg-seed").set_value(7)
    button(at, "Generate").click()
    at.run()
    assert not at.exception
    assert not at.error
    labels = [m.label for m in at.metric]
    assert labels == ["Tokens/s", "Time to first token", "Tokens", "Finish"]
    assert count(Completion) == 1
    with session_scope() as s:
        row = s.scalars(select(Completion)).one()
        assert (row.model_name, row.item_id) == ("tiny", None)
        assert row.completion_tokens >= 1
    assert row.text.strip() and row.text.strip() in texts(at.markdown)  # the streamed output
    assert len(at.dataframe) == 1  # recent runs


def test_playground_empty_prompt_shows_error(studio):
    at = page("page_playground.py")
    button(at, "Generate").click()
    at.run()
    assert not at.exception
    assert "prompt is empty" in texts(at.error)
    assert count(Completion) == 0


def test_playground_contradictory_decoding_shows_error(studio):
    at = page("page_playground.py")
    at.number_input(key="pg-max").set_value(8)
    at.number_input(key="pg-min").set_value(20)
    at.run()
    assert not at.exception
    assert "cannot exceed max_new_tokens" in texts(at.error)
    assert button(at, "Generate").disabled


# --- labeling --------------------------------------------------------------------------------------

def signed_in(name: str, password: str = "correct horse") -> dict:
    """An account (the first one is the admin), as the session state holds it after signing in."""
    with session_scope(write=True) as s:
        return accounts.public(accounts.sign_up(s, name, password))


def start_labeling(name: str = "ada") -> AppTest:
    at = AppTest.from_file(str(APP / "page_labeling.py"), default_timeout=TIMEOUT)
    at.session_state["user"] = signed_in(name)
    at.run()
    button(at, "Create demo campaign").click()
    return at.run()


def rank_selects(at: AppTest):
    return [s for s in at.selectbox if s.label.startswith("Rank ")]


def test_labeling_without_campaign_offers_demo(studio):
    at = page("page_labeling.py")
    assert not at.exception
    assert "No campaign yet" in texts(at.info)
    assert count(Campaign) == 0
    button(at, "Create demo campaign").click()
    at.run()
    assert not at.exception
    assert count(Campaign) == 1
    assert at.selectbox(key="lb-campaign").value == "demo-helpfulness"
    assert "Sign in to start ranking" in texts(at.info)


def test_labeling_shows_item_with_three_completions(studio):
    at = start_labeling()
    assert not at.exception
    assert len(rank_selects(at)) == 3
    with session_scope() as s:
        models = set(s.scalars(select(Completion.model_name)))
    assert models == {"tiny"}
    assert count(Completion) == 3


def test_labeling_complete_ranking_is_saved_and_next_item_shown(studio):
    at = start_labeling()
    first_prompt = at.info[0].value
    for select_box, rank in zip(rank_selects(at), ("1", "2", "3"), strict=True):
        select_box.select(rank)
    button(at, "Submit ranking").click()
    at.run()
    assert not at.exception
    assert not at.error
    assert count(Ranking) == 1
    with session_scope() as s:
        ranking = s.scalars(select(Ranking)).one()
        assert sorted(ranking.ranks.values()) == [1, 2, 3]
        assert not ranking.skipped
    assert at.info[0].value != first_prompt
    assert len(rank_selects(at)) == 3
    assert count(Completion) == 6  # the next item's completions


def test_labeling_incomplete_ranking_shows_error_and_saves_nothing(studio):
    at = start_labeling()
    rank_selects(at)[0].select("1")
    button(at, "Submit ranking").click()
    at.run()
    assert not at.exception
    assert "have no rank" in texts(at.error)
    assert count(Ranking) == 0


# --- jobs ------------------------------------------------------------------------------------------

def queue_tiny_job() -> int:
    """Queue the tiny preset on the tiny model straight through the service (as the form does)."""
    from jobs.specs import list_presets, load_spec_file

    spec = load_spec_file(list_presets()["sft-lora-tiny-cpu"]).model_copy(update={"base_model": "tiny"})
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


def test_jobs_form_renders_from_preset(studio):
    at = page("page_jobs.py")
    assert not at.exception
    assert "No jobs yet" in texts(at.info)
    preset = at.selectbox(key="jobs-preset")
    assert all(p.startswith("sft") for p in preset.options)
    key = f"jobs-form-{preset.value}"
    assert at.selectbox(key=f"{key}-base_model").value == "tiny"
    assert at.number_input(key=f"{key}-train-max_steps").value > 0
    assert "kind: sft" in at.code[0].value


def test_jobs_queue_creates_queued_job(studio):
    at = page("page_jobs.py")
    at.selectbox(key="jobs-preset").select("sft-lora-tiny-cpu")
    at.run()
    at.number_input(key="jobs-form-sft-lora-tiny-cpu-train-max_steps").set_value(3)
    at.run()
    button(at, "Queue job").click()
    at.run()
    assert not at.exception
    with session_scope() as s:
        job = s.scalars(select(Job)).one()
        assert (job.status, job.kind) == ("queued", "sft")
        assert job.spec["base_model"] == "tiny"
        assert job.spec["train"]["max_steps"] == 3
        assert job.spec.get("resume_from_job") is None  # an optional field left blank
    assert f"Queued job {job.id}" in texts(at.success)
    assert at.metric[0].value == "queued"


def test_jobs_bad_spec_shows_error(studio):
    at = page("page_jobs.py")
    key = f"jobs-form-{at.selectbox(key='jobs-preset').value}"
    at.number_input(key=f"{key}-train-max_steps").set_value(0)
    at.run()
    assert not at.exception
    assert "max_steps" in texts(at.error)
    assert count(Job) == 0


def test_jobs_panel_shows_status_and_loss_chart(studio):
    job_id = queue_tiny_job()
    with session_scope(write=True) as s:
        for step, loss in enumerate([2.5, 2.1, 1.8], start=1):
            queue.log_metrics(s, job_id, step, {"loss": loss, "learning_rate": 3e-4})
    queue.log_path(job_id).parent.mkdir(parents=True, exist_ok=True)
    queue.log_path(job_id).write_text("train: 1/3\rtrain: 3/3\ndone\n", encoding="utf-8")
    at = page("page_jobs.py")
    assert not at.exception
    assert [(m.label, m.value) for m in at.metric] == [("Status", "queued"), ("Step", "3"), ("Loss", "1.8")]
    assert at.get("plotly_chart")
    assert button(at, "Cancel")
    assert at.code[-1].value.strip() == "train: 3/3\ndone"  # the log, progress bars as last drawn


def test_jobs_cancel_button_cancels_queued_job(studio):
    job_id = queue_tiny_job()
    at = page("page_jobs.py")
    button(at, "Cancel").click()
    at.run()
    assert not at.exception
    with session_scope() as s:
        assert s.get(Job, job_id).status == "cancelled"
    assert at.metric[0].value == "cancelled"
    assert not [b for b in at.button if b.label == "Cancel"]


# --- evaluation ------------------------------------------------------------------------------------

def test_evaluation_without_runs_shows_info(studio):
    at = page("page_evaluation.py")
    assert not at.exception
    assert "No evaluation yet" in texts(at.info)


def test_evaluation_renders_chart_and_tables(studio):
    with session_scope(write=True) as s:
        for model, rouge in (("tiny", 0.1), ("tiny-lora", 0.2)):
            run = EvalRun(model_name=model, dataset="demo:dialogsum", split="test", n_examples=2,
                          metrics={"rouge1": rouge, "rouge2": rouge / 2, "rougeL": rouge, "bleu": 1.0})
            s.add(run)
            s.flush()
            s.add_all(EvalResult(eval_run_id=run.id, idx=i, input=f"dialogue {i}", reference="They greet.",
                                 prediction=f"Hello {i}", scores={"rouge1": rouge, "rougeL": rouge}) for i in range(2))
    at = page("page_evaluation.py")
    assert not at.exception
    assert at.get("plotly_chart")
    assert len(at.dataframe) == 2
    runs, examples = at.dataframe
    assert list(runs.value["model"]) == ["tiny", "tiny-lora"]
    assert len(examples.value) == 2


def test_evaluation_submit_without_model_shows_error(studio):
    at = page("page_evaluation.py")
    button(at, "Run evaluation").click()
    at.run()
    assert not at.exception
    assert "Pick at least one model" in texts(at.error)
    assert count(Job) == 0


def test_evaluation_submit_queues_one_job_per_model(studio):
    at = page("page_evaluation.py")
    at.multiselect(key="ev-models").select("tiny")
    at.number_input(key="ev-n").set_value(5)
    button(at, "Run evaluation").click()
    at.run()
    assert not at.exception
    with session_scope() as s:
        job = s.scalars(select(Job)).one()
        assert (job.kind, job.status, job.spec["model"], job.spec["max_examples"]) == ("eval", "queued", "tiny", 5)
