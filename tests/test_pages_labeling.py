"""The labeling pages under AppTest: the annotator workbench and the admin pages (campaigns, agreement,
preference data, accounts), on a fresh database with the tiny random model as the default. No worker runs:
completion jobs stay queued unless a test runs one in-process."""

from pathlib import Path

import pytest
from page_support import button, count, open_as, signed_in, texts
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from backend.db.engine import session_scope
from backend.db.tables import Campaign, Completion, Job, Prompt, Ranking, User
from labeling import accounts, campaigns, synthetic, workbench


def seeded(name: str = "wb", n_items: int = 3, k: int = 3, overlap: int = 2, **kw) -> int:
    with session_scope(write=True) as s:
        return synthetic.seed_campaign(s, name, n_items=n_items, k=k, overlap=overlap, **kw).id


def rank_controls(at: AppTest):
    return [c for c in at.segmented_control if c.label.startswith("Rank of response")]


def prompt_shown(at: AppTest) -> str:
    return at.text[0].value


# --- workbench -------------------------------------------------------------------------------------

def test_workbench_without_open_campaign_says_so(studio):
    admin = signed_in("ada")
    at = open_as("page_labeling.py", admin)
    assert not at.exception
    assert "No campaign is open" in texts(at.info) and "Campaigns" in texts(at.info)
    bob = signed_in("bob")
    seeded("closed-one")
    with session_scope(write=True) as s:
        campaigns.set_status(s, 1, "closed")
    at = open_as("page_labeling.py", bob)
    assert "Your admin will open one" in texts(at.info)


def test_workbench_shows_one_item_hidden_models_guidelines_and_progress(studio):
    seeded()
    signed_in("ada")
    bob = signed_in("bob")
    at = open_as("page_labeling.py", bob)
    assert not at.exception
    assert len(rank_controls(at)) == 3
    assert all(c.options == ["1", "2", "3", "F"] for c in rank_controls(at))
    assert prompt_shown(at).startswith("Synthetic prompt 0")
    around = texts(at.markdown) + texts(at.caption)  # (the synthetic completion texts name their source)
    assert "model-a" not in around and "model-b" not in around  # model identity hidden
    assert [m.value for m in at.markdown if m.value.startswith("**Response")] == [
        "**Response A**", "**Response B**", "**Response C**"]
    assert "Rank the responses" in texts(at.markdown)  # guidelines, open before the first ranking
    assert [m.value for m in at.metric] == ["0", "0"]


def test_submit_saves_ranking_with_ties_flags_comment_and_shows_next(studio):
    seeded()
    signed_in("ada")
    bob = signed_in("bob")
    at = open_as("page_labeling.py", bob)
    first = prompt_shown(at)
    for control, rank in zip(rank_controls(at), ("1", "1", "F"), strict=True):
        control.set_value(rank)
    at.text_area[0].input("two equally good")
    button(at, "Submit ranking").click()
    at.run()
    assert not at.exception and not at.error
    with session_scope() as s:
        ranking = s.scalars(select(Ranking)).one()
        assert sorted(ranking.ranks.values()) == [1, 1] and len(ranking.flags) == 1
        assert ranking.comment == "two equally good" and ranking.seconds_spent >= 0 and not ranking.skipped
        assert ranking.user_id == bob["id"]
    assert prompt_shown(at) != first and prompt_shown(at).startswith("Synthetic prompt 1")
    assert [m.value for m in at.metric] == ["1", "0"]


def test_incomplete_ranking_is_a_message_and_saves_nothing(studio):
    seeded()
    bob = signed_in("bob")
    at = open_as("page_labeling.py", bob)
    rank_controls(at)[0].set_value("1")
    button(at, "Submit ranking").click()
    at.run()
    assert not at.exception
    assert "have no rank" in texts(at.error)
    assert count(Ranking) == 0


def test_skip_then_undo_shows_the_item_again_prefilled(studio):
    seeded()
    bob = signed_in("bob")
    at = open_as("page_labeling.py", bob)
    first = prompt_shown(at)
    for control, rank in zip(rank_controls(at), ("2", "1", "3"), strict=True):
        control.set_value(rank)
    button(at, "Submit ranking").click()
    at.run()
    button(at, "Skip item").click()
    at.run()
    assert count(Ranking) == 2
    button(at, "Undo last submission").click()
    at.run()  # undoes the skip: item 2 again
    assert count(Ranking) == 1 and prompt_shown(at).startswith("Synthetic prompt 1")
    button(at, "Undo last submission").click()
    at.run()  # undoes the ranking of item 1: shown again with its ranks
    assert not at.exception
    assert count(Ranking) == 0
    assert prompt_shown(at) == first
    assert sorted(c.value for c in rank_controls(at)) == ["1", "2", "3"]


def test_double_submit_of_an_old_form_stores_one_row(studio):
    seeded()
    bob = signed_in("bob")
    at = open_as("page_labeling.py", bob)
    old_task = at.session_state["lb-task"]
    for control, rank in zip(rank_controls(at), ("1", "2", "3"), strict=True):
        control.set_value(rank)
    button(at, "Submit ranking").click()
    at.run()
    at.session_state["lb-task"] = old_task  # as if the second click of a double click still saw the old form
    at.run()
    for control, rank in zip(rank_controls(at), ("1", "2", "3"), strict=True):
        control.set_value(rank)
    button(at, "Submit ranking").click()
    at.run()
    assert not at.exception
    assert "already submitted" in texts(at.error)
    assert count(Ranking) == 1


def test_history_shows_only_own_judgements(studio):
    cid = seeded(overlap=3, annotators=["carl"], per_item=1)  # carl ranked every item
    bob = signed_in("bob")
    at = open_as("page_labeling.py", bob)
    assert "Nothing submitted yet" in texts(at.caption)
    for control, rank in zip(rank_controls(at), ("1", "2", "3"), strict=True):
        control.set_value(rank)
    button(at, "Submit ranking").click()
    at.run()
    table = at.dataframe[0].value
    assert len(table) == 1 and cid


def test_done_annotator_sees_thanks(studio):
    seeded(n_items=1, overlap=1)
    bob = signed_in("bob")
    at = open_as("page_labeling.py", bob)
    for control, rank in zip(rank_controls(at), ("1", "2", "3"), strict=True):
        control.set_value(rank)
    button(at, "Submit ranking").click()
    at.run()
    assert "You have judged every item" in texts(at.success)


def test_items_without_completions_are_generated_on_demand(studio):
    with session_scope(write=True) as s:
        campaigns.create_campaign(s, "live", ["Say hi.", "Name a fruit."], k=2, sources=[
            {"model": "tiny", "decoding": {"do_sample": True, "max_new_tokens": 4}, "label": "s"}])
    bob = signed_in("bob")
    at = open_as("page_labeling.py", bob)
    assert not at.exception
    assert len(rank_controls(at)) == 2
    with session_scope() as s:
        assert s.scalar(select(func.count(Completion.id))) == 2  # only the item shown, not the whole campaign
        assert set(s.scalars(select(Completion.source_label))) == {"s"}


# --- navigation ------------------------------------------------------------------------------------

def test_admin_sees_the_admin_labeling_pages_and_annotator_only_the_workbench(studio):
    ada, bob = signed_in("ada"), signed_in("bob")
    at = open_as("studio_app.py", ada)
    for page_file in ("page_campaigns.py", "page_label_quality.py", "page_leaderboard.py", "page_label_data.py",
                      "page_label_accounts.py"):
        at.switch_page(page_file)
        at.run()
        assert not at.exception, page_file
    at = open_as("studio_app.py", bob)
    with pytest.raises(ValueError, match="Known pages: .*page_labeling.py'\\]"):
        at.switch_page("page_campaigns.py")


def test_admin_pages_refuse_annotators(studio):
    signed_in("ada")
    bob = signed_in("bob")
    for page_file in ("page_campaigns.py", "page_label_quality.py", "page_leaderboard.py", "page_label_data.py",
                      "page_label_accounts.py"):
        at = open_as(page_file, bob)
        assert "Only an admin" in texts(at.error), page_file


# --- campaigns -------------------------------------------------------------------------------------

def test_create_campaign_from_demo_prompts_with_two_sources_queues_the_job(studio):
    ada = signed_in("ada")
    at = open_as("page_campaigns.py", ada)
    assert not at.exception
    assert "No campaign yet" in texts(at.info)
    at.text_input(key="lc-name").input("round-1")
    at.number_input(key="lc-demo-limit").set_value(5)
    at.selectbox(key="lc-src0-preset").select("balanced")
    at.selectbox(key="lc-src1-preset").select("creative")
    at.number_input(key="lc-src0-max").set_value(8)
    at.number_input(key="lc-src1-max").set_value(8)
    assert "Rank the responses" in at.text_area(key="lc-guidelines-helpfulness").value  # prefilled default
    button(at, "Create campaign and generate completions").click()
    at.run()
    assert not at.exception and not at.error
    with session_scope() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert (campaign.name, campaign.k, campaign.overlap) == ("round-1", 3, 2)
        assert campaigns.campaign_summary(s, campaign.id)["items"] == 5
        assert [src["decoding"]["temperature"] for src in campaign.sources] == [0.7, 1.1]
        job = s.scalars(select(Job)).one()
        assert (job.kind, job.status, job.spec["campaign_id"]) == ("label_completions", "queued", campaign.id)
    assert "round-1" in texts(at.markdown)
    assert "Completion job #1 queued" in str(at.get("progress")[1].proto.text)


def test_create_campaign_with_custom_criterion_from_upload(studio, tmp_path):
    ada = signed_in("ada")
    at = open_as("page_campaigns.py", ada)
    at.text_input(key="lc-name").input("concise")
    at.radio(key="lc-prompts").set_value("Upload a file")
    at.run()
    assert "Upload a prompt file first." not in texts(at.error)
    at.selectbox(key="lc-criterion").select("custom…")
    at.run()
    at.text_input(key="lc-criterion-custom").input("conciseness")
    at.number_input(key="lc-n-sources").set_value(1)
    at.run()
    button(at, "Create campaign and generate completions").click()
    at.run()
    assert "Upload a prompt file first." in texts(at.error)
    assert count(Campaign) == 0


def test_bad_campaign_input_is_a_message_and_writes_nothing(studio):
    ada = signed_in("ada")
    at = open_as("page_campaigns.py", ada)
    at.number_input(key="lc-demo-limit").set_value(3)
    at.selectbox(key="lc-src0-preset").select("balanced")
    at.selectbox(key="lc-src1-preset").select("balanced")
    button(at, "Create campaign and generate completions").click()
    at.run()
    assert "Give the campaign a name." in texts(at.error)
    at.text_input(key="lc-name").input("same-sources").run()
    button(at, "Create campaign and generate completions").click()
    at.run()
    assert "same label" in texts(at.error)
    assert count(Campaign) == 0 and count(Job) == 0


def test_campaign_progress_annotators_and_status_buttons(studio):
    ada = signed_in("ada")
    seeded("wb", annotators=["carl", "dora"], per_item=2)
    at = open_as("page_campaigns.py", ada)
    assert not at.exception
    assert [m.value for m in at.metric][:4] == ["3", "3", "3", "6 / 6"]
    people = at.dataframe[1].value
    assert list(people["annotator"]) == ["carl", "dora"] and list(people["ranked"]) == [3, 3]
    button(at, "Close").click()
    at.run()
    with session_scope() as s:
        assert s.scalar(select(Campaign.status)) == "closed"
    button(at, "Archive").click()
    at.run()
    assert "No campaign yet" in texts(at.info)  # archived ones are hidden by default
    at.toggle(key="lc-show-archived").set_value(True).run()
    button(at, "Unarchive").click()
    at.run()
    button(at, "Reopen").click()
    at.run()
    with session_scope() as s:
        assert s.scalar(select(Campaign.status)) == "open"


def test_missing_completions_can_be_queued_from_the_panel(studio):
    ada = signed_in("ada")
    with session_scope(write=True) as s:
        campaigns.create_campaign(s, "later", ["Say hi."], k=2)
    at = open_as("page_campaigns.py", ada)
    assert "1 item(s) have no completions" in texts(at.warning)
    button(at, "Generate missing completions").click()
    at.run()
    assert not at.exception
    with session_scope() as s:
        assert s.scalar(select(Job.kind)) == "label_completions"
    assert not [b for b in at.button if b.label == "Generate missing completions"]
    button(at, "Cancel job").click()
    at.run()
    with session_scope() as s:
        assert s.scalar(select(Job.status)) == "cancelled"


# --- agreement -------------------------------------------------------------------------------------

def test_agreement_page_shows_the_report_at_once_and_flags_the_outlier(studio):
    ada = signed_in("ada")
    cid = seeded("agree", n_items=12, k=3, overlap=5, annotators=["ann", "ben", "cid", "dan"], noise=0.0,
                 reverse=["dan"])
    at = open_as("page_label_quality.py", ada)
    assert not at.exception and not at.error
    assert not at.button  # no button to press: the report is there as the page opens
    assert "dan" in texts(at.warning) and "ann" not in texts(at.warning)
    assert len(at.get("plotly_chart")) == 3
    annotators = at.dataframe[0].value
    assert list(annotators[annotators["outlier"]]["annotator"]) == ["dan"]
    assert at.metric[1].value == "12" and at.metric[3].value == "48"
    # a new ranking shows on the next run (the cached report is keyed by the campaign's rankings)
    with session_scope(write=True) as s:
        eve = workbench.get_or_create_user(s, "eve").id
        task = workbench.next_task(s, cid, eve)
        workbench.submit_ranking(s, task.item_id, eve, {c["id"]: i + 1 for i, c in enumerate(task.completions)})
    at.run()
    assert not at.exception and at.metric[3].value == "49"


def test_agreement_page_draws_many_times_as_a_box_without_points(studio, monkeypatch):
    from app.components import labeling_charts

    monkeypatch.setattr(labeling_charts, "TIME_POINTS", 10)
    ada = signed_in("ada")
    seeded("many", n_items=12, k=3, overlap=2, annotators=["ann", "ben"])
    at = open_as("page_label_quality.py", ada)
    assert not at.exception and not at.error
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    times = next(c for c in charts if "Time per item (24 rankings" in c.proto.spec)
    assert '"q1"' in times.proto.spec and '"boxpoints"' not in times.proto.spec


# --- preference data -------------------------------------------------------------------------------

def test_export_writes_pairs_under_the_data_dir_and_offers_downloads(studio, tmp_path):
    ada = signed_in("ada")
    seeded("exp", n_items=6, k=3, overlap=2, annotators=["ann", "ben"], noise=0.0)
    at = open_as("page_label_data.py", ada)
    at.checkbox(key="ld-margin").check()
    at.slider(key="ld-test").set_value(0.0)
    button(at, "Export").click()
    at.run()
    assert not at.exception and not at.error
    result = at.session_state["ld-result"]
    path = Path(result["dataset"])
    assert path.name == "exp-pairs.jsonl" and path.parent.name == "preferences" and path.is_file()
    from backend.data.datasets_io import load_rows

    rows = load_rows(str(path), "train")
    assert len(rows) == 6 * 2 * 3 and set(rows[0]) == {"prompt", "chosen", "rejected", "margin"}
    assert len(at.get("download_button")) == 1


class FakeUpload:
    """What ``st.file_uploader`` returns (AppTest cannot drive the real uploader)."""

    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def test_import_reports_rejected_rows_and_keeps_good_ones(studio, monkeypatch):
    import json

    import streamlit as st

    good = {"prompt": "Say hi.", "completions": ["hi", "hello", "hey"], "ranks": [2, 1, 3], "annotator": "zoe"}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "ranks": [1, 1, 5]}),
             json.dumps({**good, "annotator": "yan", "flags": [False, False, True], "ranks": [1, 2, None]})]
    monkeypatch.setattr(st, "file_uploader", lambda *a, **k: FakeUpload("r.jsonl", "\n".join(lines).encode()))
    ada = signed_in("ada")
    at = open_as("page_label_data.py", ada)
    assert "No campaign yet" in texts(at.info)
    at.text_input(key="ld-target").input("imported")
    button(at, "Import").click()
    at.run()
    assert not at.exception
    assert "Created campaign 'imported': 2 ranking(s) imported, 2 rejected." in texts(at.success)
    report = at.dataframe[0].value  # every line, refused ones first
    assert list(report["line"]) == [2, 3, 1, 4] and "JSON" in report["detail"][0]
    assert count(Ranking) == 2


def test_campaign_from_uploaded_csv(studio, monkeypatch):
    import streamlit as st

    monkeypatch.setattr(st, "file_uploader",
                        lambda *a, **k: FakeUpload("p.csv", b"prompt,other\nSay hi.,x\nName a fruit.,y\n"))
    ada = signed_in("ada")
    at = open_as("page_campaigns.py", ada)
    at.text_input(key="lc-name").input("csv")
    at.radio(key="lc-prompts").set_value("Upload a file")
    at.number_input(key="lc-n-sources").set_value(1)
    at.run()
    button(at, "Create campaign and generate completions").click()
    at.run()
    assert not at.exception and not at.error, texts(at.error)
    with session_scope() as s:
        assert s.scalar(select(Campaign.name)) == "csv"
        assert sorted(s.scalars(select(Prompt.text))) == ["Name a fruit.", "Say hi."]


# --- accounts --------------------------------------------------------------------------------------

def test_accounts_create_promote_demote_and_reset_password(studio):
    ada = signed_in("ada")
    at = open_as("page_label_accounts.py", ada)
    assert not at.exception
    at.text_input(key="la-name").input("bob")
    at.text_input(key="la-password").input("short")
    button(at, "Create account").click()
    at.run()
    assert "at least 8 characters" in texts(at.error) and count(User) == 1
    at.text_input(key="la-name").input("bob")
    at.text_input(key="la-password").input("bob-password")
    button(at, "Create account").click()
    at.run()
    assert not at.error and count(User) == 2
    at.selectbox(key="la-pick").select(2).run()
    button(at, "Promote to admin").click()
    at.run()
    at.selectbox(key="la-pick").select(2).run()
    button(at, "Demote to annotator").click()
    at.run()
    at.text_input(key="la-new-password").input("new-password")
    button(at, "Reset password").click()
    at.run()
    with session_scope() as s:
        bob = accounts.authenticate(s, "bob", "new-password")
        assert bob.role == "annotator"
    at.selectbox(key="la-pick").select(1).run()
    button(at, "Demote to annotator").click()
    at.run()
    assert "last admin" in texts(at.error)


def test_history_shows_each_judgement_by_the_letters_the_annotator_saw(studio):
    seeded()
    bob = signed_in("bob")
    at = open_as("page_labeling.py", bob)
    for control, rank in zip(rank_controls(at), ("2", "F", "1"), strict=True):
        control.set_value(rank)
    button(at, "Submit ranking").click()
    at.run()
    button(at, "Skip item").click()
    at.run()
    table = at.dataframe[0].value
    assert list(table["judgement"]) == ["skipped", "A 2 · B F · C 1"]
