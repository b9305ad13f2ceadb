"""Compare and keep: side-by-side runs are saved with their completions, reopened, rerun, exported, sent to labeling."""

import csv
import io
import json

import pytest
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import Completion, PlaygroundRun
from backend.errors import StudioError
from services import compare, runs

GREEDY = {"max_new_tokens": 6}
SAMPLED = {"do_sample": True, "temperature": 1.3, "top_k": 20, "max_new_tokens": 6, "seed": 11,
           "num_return_sequences": 2}


@pytest.fixture
def run(tiny_model):
    variants = [
        {"model": "tiny", "decoding": GREEDY, "prompt": {"chat": False}},
        {"model": "tiny", "label": "sentiment few-shot", "decoding": SAMPLED,
         "prompt": {"template": "sentiment", "shots": 2}},
    ]
    with session_scope(write=True) as s:
        return compare.run_comparison(s, "Who would use this product?", variants)


def test_run_is_saved_with_completions_and_column_metrics(run):
    assert run["kind"] == "compare" and len(run["columns"]) == 2
    raw, few = run["columns"]
    assert raw["label"] == "tiny · raw input · greedy" and raw["prompt"] == "Who would use this product?"
    assert few["label"] == "sentiment few-shot" and few["prompt_label"] == "sentiment · few-shot (2)"
    assert few["prompt"].startswith("<|im_start|>user\nClassify this review:\nI loved this movie!")
    assert len(raw["completions"]) == 1 and len(few["completions"]) == 2
    for col in run["columns"]:
        assert col["latency_s"] > 0 and col["tokens_per_second"] > 0 and col["completion_tokens"] > 0
        assert {"words", "chars", "decoding", "citations", "notes"} <= set(col)
    with session_scope() as s:
        rows = s.scalars(select(Completion).where(Completion.run_id == run["id"])).all()
        saved = s.get(PlaygroundRun, run["id"])
        assert len(rows) == 3 and saved.input == "Who would use this product?"
        assert saved.variants[1]["decoding"]["seed"] == 11 and saved.variants[1]["prompt"]["template"] == "sentiment"
        few_rows = [r for r in rows if r.source_label == "sentiment few-shot"]
        assert {r.template for r in few_rows} == {"sentiment · few-shot (2)"} and few_rows[0].seed == 11
        assert few_rows[0].model_name == "tiny" and few_rows[0].prompt_text == few["prompt"]
        assert runs.get_run(s, run["id"]) == run
        assert runs.list_runs(s)[0]["id"] == run["id"]


def test_rerun_reproduces_and_seed_override_changes_sampling(run):
    with session_scope(write=True) as s:
        again = compare.rerun(s, run["id"])
    texts = [[c["text"] for c in col["completions"]] for col in run["columns"]]
    assert [[c["text"] for c in col["completions"]] for col in again["columns"]] == texts
    assert again["rerun_of"] == run["id"] and again["id"] != run["id"]
    with session_scope(write=True) as s:
        other = compare.rerun(s, run["id"], seed=12345)
    assert [c["text"] for c in other["columns"][0]["completions"]] == texts[0]  # greedy: seed is irrelevant
    assert [c["text"] for c in other["columns"][1]["completions"]] != texts[1]


def test_export_json_and_csv(run):
    with session_scope() as s:
        as_json = json.loads(runs.export_run(s, run["id"], "json"))
        rows = list(csv.DictReader(io.StringIO(runs.export_run(s, run["id"], "csv"))))
        with pytest.raises(StudioError, match="json"):
            runs.export_run(s, run["id"], "xml")
    assert as_json["id"] == run["id"] and len(as_json["columns"]) == 2
    assert len(rows) == 3 and rows[1]["seed"] == "11" and json.loads(rows[1]["decoding"])["top_k"] == 20
    assert rows[0]["text"] == run["columns"][0]["completions"][0]["text"]


def test_streamed_single_run_is_saved_and_next_token_view(tiny_model):
    with session_scope(write=True) as s:
        prepared = compare.prepare_variant(s, "hello", {"model": "tiny", "decoding": {"max_new_tokens": 5}})
    chunks = list(compare.stream_variant(prepared))
    with session_scope(write=True) as s:
        saved = compare.save_streamed_run(s, "hello", prepared, chunks[-1].result)
    assert saved["kind"] == "single" and saved["columns"][0]["completions"][0]["text"] == chunks[-1].result.text
    assert saved["columns"][0]["first_token_s"] is not None
    with session_scope() as s:
        view = compare.inspect_next_token(s, "hello", {"model": "tiny", "decoding": {"do_sample": True, "top_k": 3}},
                                          step=1, top_n=4)
    assert view["kept"]["top_k"] == 3 and view["prompt"].endswith("<|im_start|>assistant\n")


def test_bad_input_gives_clear_errors(tiny_model):
    cases = [
        ([{"model": "tiny"}] * 5, "x", "Compare 1 to 4"),
        ([{"model": "nope"}], "x", "Unknown model"),
        ([{"model": "tiny", "decoding": {"num_beams": 2, "num_return_sequences": 3}}], "x", "Variant 1: decoding"),
        ([{"model": "tiny", "decoding": {"min_new_tokens": 9, "max_new_tokens": 4}}], "x", "min_new_tokens"),
        ([{"model": "tiny", "precision": "fp4"}], "x", "unknown precision"),
        ([{"model": "tiny", "colour": "red"}], "x", "colour"),
        ([{"model": "tiny"}], "   ", "empty"),
        ([{"model": "tiny", "decoding": {"max_new_tokens": 10}}], "cake " * 1100, "context window"),
    ]
    with session_scope(write=True) as s:
        for variants, text, message in cases:
            with pytest.raises(StudioError, match=message):
                compare.run_comparison(s, text, variants)
        with pytest.raises(StudioError, match="no playground run"):
            runs.get_run(s, 424242)
    assert compare.decoding_summary(compare.Variant(decoding={"num_beams": 4}).decoding) == "beam 4"


def test_export_jsonl_one_line_per_completion(run):
    with session_scope() as s:
        lines = [json.loads(line) for line in runs.export_run(s, run["id"], "jsonl").splitlines()]
    assert len(lines) == 3 and {line["run_id"] for line in lines} == {run["id"]}
    assert lines[1]["column"] == "sentiment few-shot" and lines[1]["seed"] == 11
    assert lines[0]["text"] == run["columns"][0]["completions"][0]["text"] and lines[0]["tokens_per_second"] > 0


def test_send_run_to_campaign_copies_completions_and_sources(run):
    from backend.db.tables import CampaignItem, Prompt
    from labeling.generation import items_missing_completions
    from services.campaigns_from_runs import send_run_to_campaign

    with session_scope(write=True) as s:
        made = send_run_to_campaign(s, run["id"], "from the playground")
    # greedy gives 1 completion, so each variant sends 1: K = 2, round-robin over the two sources holds
    assert made["k"] == 2 and made["items"] == 1 and made["completions_per_source"] == 1
    assert made["sources"] == ["tiny · raw input · greedy", "sentiment few-shot"]
    with session_scope() as s:
        item = s.scalars(select(CampaignItem).where(CampaignItem.campaign_id == made["id"])).one()
        copies = s.scalars(select(Completion).where(Completion.item_id == item.id).order_by(Completion.id)).all()
        assert [c.text for c in copies] == [col["completions"][0]["text"] for col in run["columns"]]
        assert {c.run_id for c in copies} == {None} and copies[1].seed == 11
        assert s.get(Prompt, item.prompt_id).text == run["columns"][0]["text"]  # what the variants' model read
        from backend.db.tables import Campaign

        assert items_missing_completions(s, s.get(Campaign, made["id"])) == []  # nothing left to generate
        assert runs.get_run(s, run["id"]) == run  # the run itself is unchanged


def test_send_one_sampled_variant_and_bad_requests(run):
    from services.campaigns_from_runs import send_run_to_campaign

    with session_scope(write=True) as s:
        made = send_run_to_campaign(s, run["id"], "sampled only", columns=["sentiment few-shot"],
                                    criterion="honesty", overlap=2)
        assert (made["k"], made["overlap"], made["criterion"]) == (2, 2, "honesty")
        assert made["sources"] == ["sentiment few-shot"]
        with pytest.raises(StudioError, match="at least two variants"):
            send_run_to_campaign(s, run["id"], "one greedy", columns=["tiny · raw input · greedy"])
        with pytest.raises(StudioError, match="has no variant 'nope'"):
            send_run_to_campaign(s, run["id"], "bad", columns=["nope"])
        with pytest.raises(StudioError, match="already exists"):
            send_run_to_campaign(s, run["id"], "sampled only")
        with pytest.raises(StudioError, match="no playground run"):
            send_run_to_campaign(s, 999, "missing")


def test_parse_typed_examples():
    from services.playground import parse_typed_examples

    assert parse_typed_examples("  \n") is None
    assert parse_typed_examples('{"review": "Great", "sentiment": "Positive"}\n\n{"review": 3, "sentiment": null}') == [
        {"review": "Great", "sentiment": "Positive"}, {"review": "3", "sentiment": ""}]
    with pytest.raises(StudioError, match="line 2: not valid JSON"):
        parse_typed_examples('{"a": "b"}\n{oops')
    with pytest.raises(StudioError, match="line 1: write an object"):
        parse_typed_examples('["a", "b"]')
