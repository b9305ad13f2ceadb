"""Tests for the offline demo data sets (backend.data.demo_data)."""

from __future__ import annotations

import random
import re

import pytest

from backend.data.demo_data import (
    FIRST_NAMES,
    generate_dialogsum,
    generate_labeling_prompts,
    generate_provocative_prompts,
    write_demo_datasets,
)

SPLITS = ("train", "validation", "test")
NAME_RE = re.compile(r"\b(" + "|".join(map(re.escape, FIRST_NAMES)) + r")\b")
TURN_RE = re.compile(r"^#Person([12])#: \S.*$")


@pytest.fixture(scope="module")
def data() -> dict[str, list[dict]]:
    return generate_dialogsum()


@pytest.fixture(scope="module")
def rows(data) -> list[dict]:
    return [row for split in SPLITS for row in data[split]]


def test_dialogsum_is_deterministic(data):
    assert generate_dialogsum() == data
    assert generate_dialogsum(seed=1234, n=1500) == data
    other = generate_dialogsum(seed=99)
    assert other != data
    assert other["train"][0]["dialogue"] != data["train"][0]["dialogue"]


def test_generators_leave_global_random_alone():
    random.seed(0)
    expected = random.random()
    random.seed(0)
    generate_dialogsum(n=300)
    generate_labeling_prompts()
    generate_provocative_prompts()
    assert random.random() == expected


def test_sizes_and_split(data):
    assert set(data) == set(SPLITS)
    sizes = {split: len(data[split]) for split in SPLITS}
    assert sum(sizes.values()) == 1500
    assert sizes["test"] >= 120 and sizes["validation"] >= 120
    assert 0.75 <= sizes["train"] / 1500 <= 0.85
    assert sum(len(v) for v in generate_dialogsum(seed=5, n=600).values()) == 600


def test_schema(rows):
    for row in rows:
        assert set(row) == {"id", "topic", "dialogue", "summary"}
        assert all(isinstance(v, str) and v.strip() for v in row.values())


def test_ids_and_dialogues_unique(rows):
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["dialogue"] for r in rows}) == len(rows)


def test_topics_cover_every_split(data, rows):
    topics = {r["topic"] for r in rows}
    assert len(topics) >= 25
    for split in SPLITS:
        assert {r["topic"] for r in data[split]} == topics


def test_turn_format(rows):
    for row in rows:
        lines = row["dialogue"].split("\n")
        assert 4 <= len(lines) <= 10, row["dialogue"]
        speakers = []
        for line in lines:
            m = TURN_RE.match(line)
            assert m, line
            speakers.append(int(m.group(1)))
        assert speakers == [1 + i % 2 for i in range(len(lines))], row["dialogue"]


def test_summary_length_and_style(rows):
    for row in rows:
        summary = row["summary"]
        assert 12 <= len(summary.split()) <= 40, summary
        assert summary[0].isupper() and summary.endswith("."), summary
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", summary.replace("Dr. ", "Dr ")) if s]
        assert 1 <= len(sentences) <= 2, summary
        assert "#Person" not in summary


def test_summary_names_are_grounded_in_dialogue(rows):
    for row in rows:
        names = set(NAME_RE.findall(row["summary"]))
        assert names, row["summary"]
        assert names <= set(NAME_RE.findall(row["dialogue"])), (row["summary"], row["dialogue"])


def test_summary_numbers_are_grounded_in_dialogue(rows):
    # amounts, times, dates and room/flight numbers in a summary are copied from the dialogue
    for row in rows:
        for token in re.findall(r"\$\d{1,3}(?:,\d{3})*(?:\.\d\d)?|\d+:\d\d [ap]m|\d+", row["summary"]):
            assert token in row["dialogue"], (token, row["summary"], row["dialogue"])


def test_name_pool_is_large_and_varied():
    assert len(set(FIRST_NAMES)) >= 60
    assert any(not name.isascii() for name in FIRST_NAMES)


@pytest.mark.parametrize(
    ("generate", "n", "categories"),
    [(generate_labeling_prompts, 60, 5), (generate_provocative_prompts, 80, 7)],
)
def test_prompt_sets(generate, n, categories):
    prompts = generate()
    assert prompts == generate()
    assert generate(seed=123) != prompts
    assert len(prompts) == n
    assert len({p["id"] for p in prompts}) == n
    assert len({p["prompt"] for p in prompts}) == n
    assert len({p["category"] for p in prompts}) >= categories
    for p in prompts:
        assert set(p) == {"id", "prompt", "category"}
        assert 10 <= len(p["prompt"]) < 400, p


def test_labeling_prompts_include_dialogue_summaries():
    prompts = [p for p in generate_labeling_prompts() if p["category"] == "summarization"]
    assert prompts
    assert all("#Person1#:" in p["prompt"] and "#Person2#:" in p["prompt"] for p in prompts)


def test_provocative_prompts_are_clean():
    banned = ("fuck", "shit", "bitch", "bastard", "idiot", "stupid", "moron", "retard")
    for p in generate_provocative_prompts():
        assert not any(word in p["prompt"].lower() for word in banned), p


def test_write_demo_datasets_round_trip_and_idempotent(tmp_path, data):
    datasets = pytest.importorskip("datasets")
    paths = write_demo_datasets(tmp_path / "demo")
    assert set(paths) == {"dialogsum", "labeling_prompts", "provocative_prompts"}
    assert paths["dialogsum"].is_dir()
    files = {split: paths["dialogsum"] / f"{split}.jsonl" for split in SPLITS}
    files.update(labeling=paths["labeling_prompts"], provocative=paths["provocative_prompts"])
    assert paths["labeling_prompts"] == tmp_path / "demo" / "prompts" / "labeling.jsonl"
    assert paths["provocative_prompts"] == tmp_path / "demo" / "prompts" / "provocative.jsonl"
    before = {name: (f.read_bytes(), f.stat().st_mtime_ns) for name, f in files.items()}
    assert any("é" in b.decode("utf-8") or "ö" in b.decode("utf-8") for b, _ in before.values())  # not \u-escaped

    assert write_demo_datasets(tmp_path / "demo") == paths
    assert {name: (f.read_bytes(), f.stat().st_mtime_ns) for name, f in files.items()} == before
    files["test"].write_text("corrupted\n", encoding="utf-8")
    write_demo_datasets(tmp_path / "demo")
    assert files["test"].read_bytes() == before["test"][0]

    loaded = datasets.load_dataset(
        "json", data_files={split: str(files[split]) for split in SPLITS}, cache_dir=str(tmp_path / "hf_cache")
    )
    for split in SPLITS:
        assert loaded[split].to_list() == data[split]
    prompts = datasets.load_dataset(
        "json", data_files=str(files["provocative"]), split="train", cache_dir=str(tmp_path / "hf_cache")
    )
    assert prompts.to_list() == generate_provocative_prompts()
