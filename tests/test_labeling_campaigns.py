"""Campaign administration: prompt sets, sources, status transitions and progress figures."""

import json

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Campaign, PlaygroundRun, Prompt
from backend.errors import StudioError
from labeling import campaigns, synthetic, workbench


def count(table) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(table))


# --- prompt sets -------------------------------------------------------------------------------------

def test_parse_jsonl_csv_and_text_uploads():
    jsonl = b'{"prompt": "Say hi."}\n\n"Name a fruit."\n{"prompt": "Say hi.", "extra": 1}\n'
    assert campaigns.parse_prompt_file("p.jsonl", jsonl) == ["Say hi.", "Name a fruit.", "Say hi."]
    csv_bytes = '\ufeffid, Prompt \n1,"Explain, briefly, tides."\n2,Say hi.\n'.encode()
    assert campaigns.parse_prompt_file("p.csv", csv_bytes) == ["Explain, briefly, tides.", "Say hi."]
    assert campaigns.parse_prompt_file("p.txt", b"one\ntwo\n") == ["one", "two"]


@pytest.mark.parametrize("name, data, message", [
    ("p.jsonl", b'{"prompt": "ok"}\n{"text": "no prompt"}\nnot json\n', "line.s. 2, 3"),
    ("p.csv", b"text\nhello\n", "no 'prompt' column"),
    ("p.pdf", b"%PDF", "upload a .jsonl"),
    ("p.txt", b"\xff\xfe\x00bad", "not UTF-8"),
])
def test_bad_uploads_are_refused_with_a_reason(name, data, message):
    with pytest.raises(StudioError, match=message):
        campaigns.parse_prompt_file(name, data)


def test_create_from_upload_dedupes_and_records_the_source(studio_env):
    data = b'{"prompt": "Say hi."}\n{"prompt": "  Say hi.  "}\n{"prompt": "Name a fruit."}\n{"prompt": " "}\n'
    with session_scope(write=True) as s:
        summary = campaigns.create_campaign_from(s, "up", upload=("prompts.jsonl", data), k=4, overlap=2,
                                                 criterion="honesty")
    assert (summary["items"], summary["needed"], summary["k"], summary["status"]) == (2, 4, 4, "open")
    with session_scope() as s:
        assert set(s.scalars(select(Prompt.source))) == {"upload"}
        assert "most honest" in campaigns.find_campaign(s, "up").guidelines


def test_create_from_dataset_split(studio_env, tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"question": f"Q{i}?"}) + "\n" for i in range(5)), encoding="utf-8")
    with session_scope(write=True) as s:
        summary = campaigns.create_campaign_from(
            s, "ds", dataset={"ref": str(path), "split": "train", "column": "question", "limit": 3})
    assert summary["items"] == 3
    with pytest.raises(StudioError, match="lacks the column"), session_scope(write=True) as s:
        campaigns.create_campaign_from(s, "ds2", dataset={"ref": str(path), "column": "prompt"})


def test_create_from_playground_runs(studio_env):
    with session_scope(write=True) as s:
        runs = [PlaygroundRun(input=f"Playground prompt {i}") for i in range(3)]
        s.add_all(runs)
        s.flush()
        ids = [r.id for r in runs]
        assert campaigns.create_campaign_from(s, "pg", playground_runs=ids[:2])["items"] == 2
        assert campaigns.create_campaign_from(s, "pg-latest", playground_runs=[])["items"] == 3
        with pytest.raises(StudioError, match="no playground run 999"):
            campaigns.create_campaign_from(s, "pg-bad", playground_runs=[999])


def test_exactly_one_prompt_set(studio_env):
    with pytest.raises(StudioError, match="Choose one prompt set"), session_scope(write=True) as s:
        campaigns.create_campaign_from(s, "x", prompts=["a"], upload=("p.txt", b"b"))


@pytest.mark.parametrize("kwargs, message", [
    ({"prompts": ["a"], "k": 1}, "between 2 and 9"),
    ({"prompts": ["a"], "overlap": 0}, "overlap"),
    ({"prompts": ["a"], "criterion": " "}, "criterion"),
    ({"prompts": [" ", ""]}, "empty"),
    ({"upload": ("p.csv", b"prompt\n\n")}, "empty"),
])
def test_bad_campaigns_change_nothing(studio_env, kwargs, message):
    with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
        campaigns.create_campaign_from(s, "bad", **kwargs)
    assert count(Campaign) == 0 and count(Prompt) == 0


# --- sources -----------------------------------------------------------------------------------------

def test_sources_split_k_round_robin_and_get_labels(tiny_model):
    assert campaigns.slot_counts(2, 5) == [3, 2]
    assert campaigns.slot_counts(3, 3) == [1, 1, 1]
    sources = [{"model": "tiny", "decoding": {"do_sample": True, "temperature": 0.7, "max_new_tokens": 8}},
               {"model": "tiny", "decoding": {"do_sample": False}, "label": "tiny greedy"}]
    with session_scope(write=True) as s:
        c = campaigns.create_campaign(s, "src", ["a", "b"], k=3, sources=sources)
        stored = list(c.sources)
    assert [src["label"] for src in stored] == ["tiny · T0.7", "tiny greedy"]
    assert stored[0]["decoding"]["max_new_tokens"] == 8 and "num_return_sequences" not in stored[0]["decoding"]


@pytest.mark.parametrize("sources, k, message", [
    ([{"model": "tiny", "decoding": {"do_sample": False}}], 3, "turn on sampling"),  # greedy cannot make 3
    ([{"model": "nope-model"}], 3, "Unknown model"),
    ([{"model": "tiny", "decoding": {"temperature": 9}}], 3, "Source 1"),
    ([{"model": "tiny", "label": "x"}, {"model": "tiny", "label": "x"}], 3, "same label"),
    ([{"model": "tiny"}] * 3, 2, "at most 2 sources"),
    ([{"model": "tiny", "temperature": 1}], 3, "fields"),
])
def test_bad_sources_are_refused_before_writing(tiny_model, sources, k, message):
    with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
        campaigns.create_campaign(s, "bad-src", ["a"], k=k, sources=sources)
    assert count(Campaign) == 0


# --- lifecycle ---------------------------------------------------------------------------------------

def test_status_transitions(studio_env):
    with session_scope(write=True) as s:
        cid = campaigns.create_campaign(s, "life", ["a"]).id
        assert campaigns.set_status(s, cid, "closed")["status"] == "closed"
        assert campaigns.set_status(s, cid, "open")["status"] == "open"
        assert campaigns.set_status(s, cid, "archived")["status"] == "archived"
        with pytest.raises(StudioError, match="unarchive"):
            campaigns.set_status(s, cid, "open")
        assert campaigns.set_status(s, cid, "closed")["status"] == "closed"
        with pytest.raises(StudioError, match="Status must be"):
            campaigns.set_status(s, cid, "deleted")
        assert [c["name"] for c in campaigns.list_campaigns(s, status="open")] == []
        assert [c["name"] for c in campaigns.list_campaigns(s, status=["closed", "archived"])] == ["life"]


def test_update_guidelines_and_overlap(studio_env):
    with session_scope(write=True) as s:
        cid = campaigns.create_campaign(s, "upd", ["a", "b"]).id
        assert campaigns.update_campaign(s, cid, overlap=3)["needed"] == 6
        assert campaigns.update_campaign(s, cid, guidelines="Be kind.")["overlap"] == 3
        with pytest.raises(StudioError, match="Overlap"):
            campaigns.update_campaign(s, cid, overlap=0)
        assert campaigns.find_campaign(s, cid).guidelines == "Be kind."


def test_default_guidelines_quote_the_seed_instructions():
    text = campaigns.default_guidelines("helpfulness")
    assert "most helpful to least helpful" in text
    assert '"F"' in text and "sparingly" in text and "Long answers are not always the best" in text
    assert "best to worst for **conciseness**" in campaigns.default_guidelines("conciseness")


# --- progress ----------------------------------------------------------------------------------------

def test_progress_per_campaign_and_annotator(studio_env):
    with session_scope(write=True) as s:
        c = synthetic.seed_campaign(s, "prog", n_items=6, k=3, overlap=2, annotators=["a", "b", "c"], per_item=2)
        cid = c.id
        campaigns.create_campaign(s, "empty", ["x", "y"])  # no completions yet
        # a third ranking of item 1 (over the overlap) and one skip
        user = workbench.get_or_create_user(s, "d")
        task = workbench.next_task(s, cid, user.id)
        assert task is None  # every item has its 2 judgements: nothing for d
        campaigns.update_campaign(s, cid, overlap=3)
        task = workbench.next_task(s, cid, user.id)
        workbench.submit_ranking(s, task.item_id, user.id, {c["id"]: i + 1 for i, c in enumerate(task.completions)})
        task = workbench.next_task(s, cid, user.id)
        workbench.submit_ranking(s, task.item_id, user.id, {}, skipped=True)
        campaigns.update_campaign(s, cid, overlap=2)
    with session_scope() as s:
        p = campaigns.campaign_progress(s, cid)
        assert (p["items"], p["items_ready"], p["items_complete"]) == (6, 6, 6)
        assert (p["judgements"], p["judgements_needed"], p["judgements_counted"], p["skips"]) == (13, 12, 12, 1)
        assert p["annotators"] == 4 and p["fraction_done"] == 1.0
        empty = campaigns.campaign_progress(s, "empty")
        assert (empty["items"], empty["items_ready"], empty["judgements"], empty["fraction_done"]) == (2, 0, 0, 0.0)
        rows = {r["annotator"]: r for r in campaigns.annotator_progress(s, cid)}
        assert {n: (r["ranked"], r["skipped"]) for n, r in rows.items()} == {
            "a": (4, 0), "b": (4, 0), "c": (4, 0), "d": (1, 1)}
        listed = {c["name"]: c for c in campaigns.list_campaigns(s)}
        assert listed["prog"]["rankings"] == 13 and listed["empty"]["rankings"] == 0
