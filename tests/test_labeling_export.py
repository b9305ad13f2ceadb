"""Rankings → TRL preference rows: strategies, consensus, disagreement filter, splits, files, datasets, CLI."""

import argparse
import json

import pytest

from backend.db.engine import session_scope
from backend.errors import StudioError
from cli.labels import register
from labeling import export, synthetic, workbench
from labeling.records import ItemRecord, load_items

pytestmark = pytest.mark.databases("sqlite", "postgres")  # tests/conftest.py: one variant per backend


def record(judgements, texts=("c1", "c2", "c3"), prompt="my house is too hot", item_id=1):
    return ItemRecord(item_id=item_id, prompt=prompt, completion_ids=list(range(len(texts))), texts=list(texts),
                      sources=["s"] * len(texts), judgements=judgements)


def pairs(rows):
    return sorted((r["chosen"], r["rejected"]) for r in rows)


def test_course_example_gives_three_preferred_first_rows():
    rows, stats = export.preference_rows([record({"ann": [2, 1, 3]})])
    assert pairs(rows) == sorted([("c2", "c1"), ("c2", "c3"), ("c1", "c3")])
    assert all(set(r) == {"prompt", "chosen", "rejected"} and r["prompt"] == "my house is too hot" for r in rows)
    assert stats == {"items": 1, "rankings": 1, "dropped_for_disagreement": 0, "pairs": 3}


def test_strategies_margin_ties_and_flags():
    rec = record({"ann": [3, 1, 2, 4]}, texts=("a", "b", "c", "d"))
    assert pairs(export.preference_rows([rec], strategy="best-vs-rest")[0]) == [("b", "a"), ("b", "c"), ("b", "d")]
    rows, _ = export.preference_rows([rec], strategy="best-vs-worst", margin=True)
    assert rows == [{"prompt": rec.prompt, "chosen": "b", "rejected": "d", "margin": 3.0}]
    # ties give no pair; (1, 1, 3) is renumbered (1, 1, 2) so the margin is one rank level
    rows, _ = export.preference_rows([record({"ann": [1, 1, 3]})], margin=True)
    assert pairs(rows) == [("c1", "c3"), ("c2", "c3")] and {r["margin"] for r in rows} == {1.0}
    # flagged (None) completions are removed before pairing
    assert pairs(export.preference_rows([record({"ann": [1, None, 2]})])[0]) == [("c1", "c3")]


def test_each_annotator_keeps_their_pairs_or_consensus_first():
    rec = record({"a": [1, 2, 3], "b": [1, 2, 3], "c": [2, 1, 3]})
    per_annotator, stats = export.preference_rows([rec])
    assert len(per_annotator) == 9 and stats["rankings"] == 3
    consensus, _ = export.preference_rows([rec], consensus=True)
    # mean fractional ranks: c1 (1+1+2)/3 = 4/3, c2 (2+2+1)/3 = 5/3, c3 = 3 → c1 > c2 > c3
    assert pairs(consensus) == sorted([("c1", "c2"), ("c1", "c3"), ("c2", "c3")])


def test_disagreement_filter_drops_only_items_beyond_the_threshold():
    agree = record({"a": [1, 2, 3], "b": [1, 2, 3]}, prompt="p1")
    split = record({"a": [1, 2, 3], "b": [2, 1, 3]}, prompt="p2")  # agree on 2 of 3 pairs: disagreement 1/3
    opposite = record({"a": [1, 2, 3], "b": [3, 2, 1]}, prompt="p3")  # disagreement 1
    single = record({"a": [1, 2, 3]}, prompt="p4")  # one annotator: kept
    items = [agree, split, opposite, single]
    rows, stats = export.preference_rows(items, max_disagreement=0.5)
    assert {r["prompt"] for r in rows} == {"p1", "p2", "p4"} and stats["dropped_for_disagreement"] == 1
    rows, stats = export.preference_rows(items, max_disagreement=1 / 3)
    assert {r["prompt"] for r in rows} == {"p1", "p2", "p4"}  # exactly at the threshold: kept
    rows, stats = export.preference_rows(items, max_disagreement=0.0)
    assert {r["prompt"] for r in rows} == {"p1", "p4"} and stats["dropped_for_disagreement"] == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "some"}, "Pairs must be"),
    ({"max_disagreement": 1.5}, "between 0 and 1"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(StudioError, match=message):
        export.preference_rows([record({"a": [1, 2, 3]})], **kwargs)


def test_split_by_prompt_never_straddles_and_is_deterministic():
    rows = [{"prompt": f"p{i}", "chosen": "x", "rejected": str(j)} for i in range(10) for j in range(3)]
    train, test = export.split_by_prompt(rows, test_size=0.2, seed=3)
    assert len({r["prompt"] for r in test}) == 2 and len(train) + len(test) == 30
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert export.split_by_prompt(rows, test_size=0.2, seed=3) == (train, test)
    assert export.split_by_prompt(rows, test_size=0.2, seed=4) != (train, test)
    assert export.split_by_prompt(rows, 0.0) == (rows, [])
    one_prompt = rows[:3]
    assert export.split_by_prompt(one_prompt, 0.5) == (one_prompt, [])  # a single prompt stays in train
    assert len({r["prompt"] for r in export.split_by_prompt(rows[:6], 0.01)[1]}) == 1  # at least one in test


def test_write_jsonl_and_parquet_round_trip(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"prompt": "p", "chosen": "é", "rejected": "b", "margin": 2.0}]
    path = export.write_rows(rows, tmp_path / "out" / "pairs.jsonl", "jsonl")
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == rows
    path = export.write_rows(rows, tmp_path / "pairs.parquet", "parquet")
    assert pq.read_table(path).to_pylist() == rows
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporary files left behind


@pytest.fixture
def ranked(studio_env):
    with session_scope(write=True) as s:
        return synthetic.seed_campaign(s, "ranked", n_items=10, k=3, annotators=["a", "b", "c"], noise=0.2,
                                       reverse=["c"]).id


def test_export_campaign_single_file_and_train_test_folder(ranked, tmp_path):
    with session_scope() as s:
        report = export.export_campaign(s, "ranked", tmp_path / "all.jsonl", margin=True)
        assert report["pairs"] == 90 and report["rows"] == {"all": 90} and report["format"] == "jsonl"
        rows = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
        assert set(rows[0]) == {"prompt", "chosen", "rejected", "margin"}
        report = export.export_campaign(s, "ranked", tmp_path / "split", fmt="parquet", consensus=True,
                                        test_size=0.2, seed=1)
        assert set(report["files"]) == {"train", "test"} and report["rows"]["test"] > 0
        assert (tmp_path / "split" / "train.parquet").is_file() and (tmp_path / "split" / "test.parquet").is_file()


def test_export_refusals_change_nothing(studio_env, tmp_path):
    tmp_path = tmp_path / "exports"
    tmp_path.mkdir()
    with session_scope(write=True) as s:
        synthetic.seed_campaign(s, "unranked", n_items=2)
    with session_scope() as s:
        with pytest.raises(StudioError, match="no rankings yet"):
            export.export_campaign(s, "unranked", tmp_path / "x.jsonl")
        with pytest.raises(StudioError, match="no campaign"):
            export.export_campaign(s, "missing", tmp_path / "x.jsonl")
        with pytest.raises(StudioError, match="make them match"):
            export.export_campaign(s, "unranked", tmp_path / "x.parquet", fmt="jsonl")
    assert not list(tmp_path.iterdir())


def test_all_tied_rankings_give_no_pairs_and_say_so(studio_env, tmp_path):
    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "ties", n_items=1).id
        user = workbench.get_or_create_user(s, "ann").id
        task = workbench.next_task(s, cid, user)
        workbench.submit_ranking(s, task.item_id, user, {c["id"]: 1 for c in task.completions})
    with session_scope() as s, pytest.raises(StudioError, match="no preference pair"):
        export.export_campaign(s, "ties", tmp_path / "x.jsonl")


def test_records_map_stored_rankings_by_completion(ranked):
    with session_scope() as s:
        items = load_items(s, ranked)
    assert len(items) == 10 and all(set(r.judgements) == {"a", "b", "c"} for r in items)
    assert all(sorted(v) == [1, 2, 3] for r in items for v in r.judgements.values())


def cli(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="studio")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def test_cli_export(ranked, tmp_path, capsys):
    out = tmp_path / "pairs.parquet"
    cli("labels", "export", "--campaign", "ranked", "--pairs", "best-vs-worst", "--margin", "--out", str(out))
    assert "10 items" in capsys.readouterr().out and out.is_file()
    cli("labels", "export", "--campaign", "ranked", "--format", "jsonl", "--consensus", "--max-disagreement",
        "0.5", "--test-size", "0.2", "--out", str(tmp_path / "folder"), "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["consensus"] and set(report["files"]) == {"train", "test"}
    with pytest.raises(SystemExit):
        cli("labels", "export", "--campaign", "ranked", "--pairs", "nope", "--out", str(out))
    with pytest.raises(StudioError, match="no campaign"):
        cli("labels", "export", "--campaign", "missing", "--out", str(out))


def test_unwritable_output_is_a_clear_error(ranked, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with session_scope() as s:
        with pytest.raises(StudioError, match="Could not write"):
            export.export_campaign(s, "ranked", blocker / "pairs.jsonl")
        with pytest.raises(StudioError, match="is a file"):
            export.export_campaign(s, "ranked", blocker, test_size=0.2)
