"""A double-click on "Queue job" queues one job; the same spec queued again on purpose later is a new job."""

from page_support import button, count, open_as, the_admin
from sqlalchemy import select

from app.components import submit_once
from backend.db.engine import session_scope
from backend.db.tables import Job


def test_double_click_on_queue_job_queues_one_job(studio, monkeypatch):
    at = open_as("page_jobs.py", the_admin())  # queueing a job needs an admin
    at.selectbox(key="jobs-preset").select("sft-lora-tiny-cpu").run()
    at.number_input(key="sft-sft-lora-tiny-cpu-train-max_steps").set_value(2).run()
    button(at, "Queue job").click().run()
    button(at, "Queue job").click().run()  # the second click of a double-click: its rerun follows at once
    assert not at.exception
    assert count(Job) == 1
    monkeypatch.setattr(submit_once, "REPEAT_AFTER_SECONDS", 0.0)  # as if the user clicked again a while later
    button(at, "Queue job").click().run()
    assert count(Job) == 2
    with session_scope() as s:
        tokens = s.scalars(select(Job.submission_token)).all()
    assert len(set(tokens)) == 2 and all(tokens)


def test_double_click_on_run_evaluation_queues_each_model_once(studio):
    at = open_as("page_evaluation.py", the_admin())
    at.multiselect(key="ev-models").select("tiny")
    at.number_input(key="ev-n").set_value(5)
    at.text_input(key="ev-extra").set_value("")
    at.checkbox(key="ev-ppl").uncheck()
    at.run()
    button(at, "Run evaluation").click().run()
    button(at, "Run evaluation").click().run()
    assert not at.exception
    assert count(Job) == 1
    at.number_input(key="ev-n").set_value(6).run()  # another spec: a new submission
    button(at, "Run evaluation").click().run()
    assert count(Job) == 2


def test_double_click_on_create_campaign_creates_one_campaign_and_one_job(studio):
    from backend.db.tables import Campaign

    at = open_as("page_campaigns.py", the_admin())
    at.text_input(key="lc-name").input("round-1")
    at.number_input(key="lc-demo-limit").set_value(3)
    at.run()
    create = button(at, "Create campaign and generate completions")
    create.click().run()
    create.click().run()  # the second click of a double-click, on the form it was made on
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert count(Campaign) == 1 and count(Job) == 1


def test_double_click_on_generate_missing_completions_queues_one_job_and_no_error(studio):
    from labeling import campaigns

    with session_scope(write=True) as s:
        campaigns.create_campaign(s, "later", ["Say hi."], k=2)
    at = open_as("page_campaigns.py", the_admin())
    generate = button(at, "Generate missing completions")
    generate.click().run()
    generate.click().run()  # the stale button of the same page: its callback runs again
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert count(Job) == 1
