"""Importing rankings collected elsewhere: row-by-row validation, atomic rows, campaign creation, CLI."""

import argparse
import json

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Campaign, CampaignItem, Completion, Prompt, Ranking, User
from backend.errors import StudioError
from cli.labels import register
from labeling import campaigns, export
from labeling.importer import import_rankings

pytestmark = pytest.mark.databases("sqlite", "postgres")  # tests/conftest.py: one variant per backend


def row(prompt="my house is too hot", completions=("open a window", "turn on the oven", "buy a fan"),
        ranks=(2, 1, 3), annotator="ann", **extra):
    return json.dumps({"prompt": prompt, "completions": list(completions), "ranks": list(ranks),
                       "annotator": annotator, **extra})


def counts() -> dict[str, int]:
    with session_scope() as s:
        return {t.__name__: s.scalar(select(func.count()).select_from(t))
                for t in (Campaign, CampaignItem, Completion, Prompt, Ranking, User)}


def run(lines, campaign="imported"):
    with session_scope(write=True) as s:
        return import_rankings(s, lines, campaign)


def test_import_creates_the_campaign_users_items_and_rankings(studio_env):
    report = run([row(), row(annotator="bob", completions=("buy a fan", "open a window", "turn on the oven"),
                             ranks=(3, 2, 1)), row(prompt="Say hi.", completions=("hi", "hello", "yo"),
                                                   ranks=(1, 1, 3), flags=[False, False, False], seconds=4.5)])
    assert report == {"campaign": "imported", "created": True, "accepted": 3, "rejected": []}
    assert counts() == {"Campaign": 1, "CampaignItem": 2, "Completion": 6, "Prompt": 2, "Ranking": 3, "User": 2}
    with session_scope() as s:
        campaign = s.scalar(select(Campaign))
        assert (campaign.k, campaign.status) == (3, "open")
        assert set(s.scalars(select(Completion.source_label))) == {"imported"}
        rows, _ = export.campaign_rows(s, "imported")
    # bob listed the same completions in another order: matched by text, so both rankings agree on pairs
    assert sorted((r["chosen"], r["rejected"]) for r in rows if r["prompt"] == "my house is too hot") == sorted(
        [("turn on the oven", "open a window"), ("turn on the oven", "buy a fan"), ("open a window", "buy a fan")] * 2)


def test_flagged_completions_are_stored_as_flags(studio_env):
    run([row(ranks=(1, None, 2), flags=[False, True, False])])
    with session_scope() as s:
        ranking = s.scalar(select(Ranking))
        oven = s.scalar(select(Completion.id).where(Completion.text == "turn on the oven"))
        assert ranking.flags == [oven] and str(oven) not in ranking.ranks


BAD_ROWS = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"prompt": "p", "completions": ["a", "b"], "ranks": [1, 2]}), "missing annotator"),
    (row(prompt="  "), "prompt must be"),
    (row(completions=("a", 2, "c")), "list of strings"),
    (row(completions=("a",), ranks=(1,)), "K must be between 2 and 9"),
    (row(completions=tuple("abcdefghij"), ranks=tuple(range(1, 11))), "K must be between 2 and 9"),
    (row(completions=("a", "a", "b")), "distinct"),
    (row(ranks=(1, 2)), "one rank per completion"),
    (row(ranks=(1, 2, 5)), "whole numbers"),
    (row(ranks=(1, 3, 3)), "gaps"),
    (row(ranks=(1, None, 2)), "no rank"),
    (row(flags=[True, False]), "flags must be"),
    (row(annotator=""), "annotator must be"),
    (row(seconds=-3), "seconds"),
]


@pytest.mark.parametrize("line, reason", BAD_ROWS, ids=[r for _, r in BAD_ROWS])
def test_each_bad_row_is_rejected_with_its_line_and_reason_and_changes_nothing(studio_env, line, reason):
    report = run(["", line])
    assert report["accepted"] == 0 and not report["created"]
    assert len(report["rejected"]) == 1 and report["rejected"][0]["line"] == 2
    assert reason in report["rejected"][0]["reason"]
    assert counts() == dict.fromkeys(("Campaign", "CampaignItem", "Completion", "Prompt", "Ranking", "User"), 0)


def test_good_rows_are_kept_around_bad_ones(studio_env):
    report = run([row(), "oops", row(completions=("a", "b"), ranks=(1, 2), prompt="other"),
                  row(annotator="bob"), row(annotator="ann")])
    assert report["accepted"] == 2
    assert [(r["line"], r["reason"].split(" ")[0]) for r in report["rejected"]] == [(2, "not"), (3, "2"), (5, "annotator")]
    assert "K=3" in report["rejected"][1]["reason"] and "already ranked" in report["rejected"][2]["reason"]
    assert counts()["Ranking"] == 2


def test_rows_for_a_known_prompt_must_carry_the_same_completions(studio_env):
    run([row()])
    report = run([row(annotator="bob", completions=("open a window", "turn on the oven", "sit still"))])
    assert report["accepted"] == 0 and "differ" in report["rejected"][0]["reason"]


def test_import_into_an_existing_campaign_and_a_second_time(studio_env):
    with session_scope(write=True) as s:
        campaigns.create_campaign(s, "existing", ["my house is too hot"], k=3)
    report = run([row()], campaign="existing")
    assert report["accepted"] == 1 and not report["created"]
    assert counts()["CampaignItem"] == 1  # the existing item got the imported completions
    again = run([row()], campaign="existing")
    assert again["accepted"] == 0 and "already ranked" in again["rejected"][0]["reason"]


def test_archived_campaign_refuses_import(studio_env):
    with session_scope(write=True) as s:
        cid = campaigns.create_campaign(s, "old", ["x"]).id
        campaigns.set_status(s, cid, "archived")
    with pytest.raises(StudioError, match="archived"):
        run([row()], campaign="old")


def test_unreadable_files_are_refused(studio_env, tmp_path):
    with pytest.raises(StudioError, match="No file"):
        run(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(StudioError, match="not UTF-8"):
        run(bad)


def cli(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="studio")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def test_cli_import_then_export(studio_env, tmp_path, capsys):
    path = tmp_path / "rankings.jsonl"
    path.write_text("\n".join([row(), row(annotator="bob"), "garbage"]) + "\n", encoding="utf-8")
    cli("labels", "import", str(path), "--campaign", "outside")
    out = capsys.readouterr().out
    assert "2 ranking(s) imported into 'outside' (new campaign), 1 rejected" in out and "line 3:" in out
    cli("labels", "export", "--campaign", "outside", "--out", str(tmp_path / "pairs.jsonl"))
    assert len((tmp_path / "pairs.jsonl").read_text().splitlines()) == 6
    capsys.readouterr()
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("garbage\n", encoding="utf-8")
    with pytest.raises(StudioError, match="No row was imported"):
        cli("labels", "import", str(only_bad), "--campaign", "nothing", "--json")
    assert json.loads(capsys.readouterr().out)["rejected"] == [{"line": 1, "reason": "not valid JSON (Expecting "
                                                                "value at column 1)"}]
