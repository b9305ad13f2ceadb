"""SFT data before launch: the preview shows examples exactly as formatted, a template mix, validation hold-out,
the long-example policy, and readable refusals for bad files, templates and unreachable hub datasets."""

import json

import pytest

from backend.db.engine import session_scope
from backend.db.tables import Job
from backend.errors import StudioError
from jobs import queue
from jobs.data import apply_length_policy, load_sft_data
from jobs.run import main as run_job
from jobs.specs import EvalSpec, SFTSpec
from services.training import preview_examples

FLAN = ["flan-briefly", "flan-what-summary", "flan-talking-about"]


def write_rows(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def dialogue_rows(n=8, words=3):
    return [{"dialogue": f"#Person1#: hello booking {i} " + "thanks " * words + f"\n#Person2#: refund {i}",
             "summary": f"Person1 greets Person2 about booking {i}."} for i in range(n)]


def spec(data, **values) -> SFTSpec:
    return SFTSpec.model_validate({"base_model": "tiny", "dataset": str(data), **values})


def preview(s, **kwargs):
    with session_scope() as session:
        return preview_examples(session, s, **kwargs)


def test_preview_shows_chat_formatted_examples(tiny_model, tmp_path):
    data = write_rows(tmp_path / "d" / "train.jsonl", dialogue_rows())
    rows = preview(spec(data), n=2)
    assert len(rows) == 2
    first = rows[0]
    assert first["prompt"].startswith("<|im_start|>user\nSummarize the following conversation.")
    assert first["prompt"].endswith("<|im_start|>assistant\n")
    assert first["completion"].startswith("Person1 greets Person2 about booking 0.")
    assert "<|im_end|>" in first["completion"]  # the model learns to stop
    assert first["text"] == first["prompt"] + first["completion"]
    assert first["template"] == "summarize-conversation" and first["tokens"] > first["prompt_tokens"] > 0
    assert first["over_max_length"] is False and first["if_too_long"] == ""
    plain = preview(spec(data, chat_format=False), n=1)[0]
    assert plain["prompt"].endswith("Summary:") and plain["completion"] == " Person1 greets Person2 about booking 0."


def test_template_mix_is_seeded_per_row(tiny_model, tmp_path):
    data = write_rows(tmp_path / "d" / "train.jsonl", dialogue_rows(12))
    mixed = spec(data, template_mix=FLAN)
    used = [r["template"] for r in preview(mixed, n=12)]
    assert set(used) == set(FLAN)  # 12 rows, 3 phrasings: each appears
    assert used == [r["template"] for r in preview(mixed, n=12)]  # same seed, same phrasing per row
    other = [r["template"] for r in preview(spec(data, template_mix=FLAN, train={"seed": 7}), n=12)]
    assert other != used


def test_validation_held_out_when_no_split(tiny_model, tmp_path):
    data = write_rows(tmp_path / "d" / "train.jsonl", dialogue_rows(20))
    split = load_sft_data(spec(data, validation_share=0.2, max_eval_examples=3))
    assert (len(split.train), len(split.validation), split.validation_source) == (17, 3, "held out")
    train, held = ({e["completion"][0]["content"] for e in part} for part in (split.train, split.validation))
    assert not train & held
    assert load_sft_data(spec(data, validation_share=0.0)).validation == []


def test_long_example_policy(tiny_model, tmp_path):
    from backend.models.loader import load_tokenizer

    tok = load_tokenizer(tiny_model.path)
    rows = dialogue_rows(3) + dialogue_rows(1, words=200)  # one dialogue far over 96 tokens
    examples = load_sft_data(spec(write_rows(tmp_path / "d" / "train.jsonl", rows), validation_share=0)).train
    kept, stats = apply_length_policy(examples, tok, 96, "truncate")
    assert len(kept) == 3 and stats["dropped"] == 1  # its prompt alone fills max_length: nothing to learn
    kept, stats = apply_length_policy(examples, tok, 1000, "skip")
    assert len(kept) == 4 and stats == {**stats, "truncated": 0, "dropped": 0}
    kept, stats = apply_length_policy(examples[:3], tok, 50, "truncate")  # prompts ~42 tokens, whole ~65
    assert len(kept) == 3 and stats["truncated"] == 3  # kept, cut at the end
    with pytest.raises(StudioError, match="All 3 training examples are longer"):
        apply_length_policy(examples[:3], tok, 50, "skip")  # nothing left to train on
    with pytest.raises(StudioError, match="longer than train.max_length=96"):
        apply_length_policy(examples, tok, 96, "refuse")


def test_refused_long_examples_fail_the_job_readably(tiny_model, tmp_path):
    data = write_rows(tmp_path / "d" / "train.jsonl", dialogue_rows(2) + dialogue_rows(1, words=200))
    s = spec(data, long_examples="refuse", validation_share=0, train={"max_steps": 1, "max_length": 96})
    assert preview(s, n=3)[2]["if_too_long"] == "refused (the job fails)"
    with session_scope(write=True) as session:
        job_id = queue.submit(session, s).id
    assert run_job(job_id) == 1
    with session_scope() as session:
        error = session.get(Job, job_id).error
    assert "1 of 3 training examples are longer than train.max_length=96" in error and "Traceback" not in error


@pytest.mark.parametrize(("content", "match"), [
    (b'{"dialogue": "caf\xe9", "summary": "x"}\n', "not valid UTF-8"),
    (b'{"dialogue": "a", "summary": ""}\n', "empty required field"),
    (b'{"dialogue": "a", "headline": "x"}\n', "lacks the column"),
    (b"not json at all\n", "Could not read"),
])
def test_bad_files_are_explained(tiny_model, tmp_path, content, match):
    path = tmp_path / "d" / "train.jsonl"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(StudioError, match=match):
        preview(spec(path))


def test_bad_csv_bytes_are_explained(tiny_model, tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"dialogue,summary\ncaf\xe9,x\n")
    with pytest.raises(StudioError, match="UTF-8"):
        preview(spec(path))


@pytest.mark.parametrize(("make", "match"), [
    (lambda d: spec(d, template="Summarize this."), "no {field}"),
    (lambda d: spec(d, template_mix=["flan-briefly", "Tell me a joke."]), "no {field}"),
    (lambda d: spec("someone/some-dialogue-set"), "could not be loaded.*offline"),
    (lambda d: spec("hub:someone/some-dialogue-set"), "hub"),
    (lambda d: EvalSpec(model="tiny", dataset=str(d), split="train", template="Say hi."), "no {field}"),
])
def test_refused_at_submit(tiny_model, tmp_path, make, match):
    data = write_rows(tmp_path / "d" / "train.jsonl", dialogue_rows(2))
    with pytest.raises(StudioError, match=match), session_scope(write=True) as s:
        queue.submit(s, make(data))


def test_eval_preview_shows_prompt_and_reference(tiny_model, tmp_path):
    data = write_rows(tmp_path / "d" / "test.jsonl", dialogue_rows(3))
    rows = preview(EvalSpec(model="tiny", dataset=str(data.parent), split="test"), n=5)
    assert len(rows) == 3 and rows[1]["reference"] == "Person1 greets Person2 about booking 1."
    assert rows[1]["prompt"].endswith("<|im_start|>assistant\n")
