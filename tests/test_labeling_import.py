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
    lines = report.pop("lines")
    assert report == {"campaign": "imported", "created": True, "accepted": 3, "rejected": []}
    assert [(r["line"], r["outcome"], r["item_id"], r["k"], r["rankings"]) for r in lines] == [
        (1, "kept", 1, 3, 1), (2, "kept", 1, 3, 2), (3, "kept", 2, 3, 1)]
    assert lines[1]["detail"] == "ranking by bob: 3 of 3 completions ranked; the item now has 2 ranking(s)"
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
                  row(annotator="bob"), "", row(annotator="ann"), row(ranks=(1, 3, 3), prompt="gappy")])
    assert report["accepted"] == 3
    assert [(r["line"], r["outcome"]) for r in report["lines"]] == [
        (1, "kept"), (2, "refused"), (3, "kept"), (4, "kept"), (6, "refused"), (7, "refused")]  # 5 is blank
    reasons = {r["line"]: r["reason"] for r in report["rejected"]}
    assert "not valid JSON" in reasons[2] and "one JSON object per line" in reasons[2]  # what is wrong, how to fix
    assert "already ranked" in reasons[6] and "drop the repeated line" in reasons[6]
    assert "gaps" in reasons[7]
    assert counts()["Ranking"] == 3 and counts()["Prompt"] == 2  # the refused "gappy" line wrote nothing


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
    assert "2 ranking(s) imported into 'outside' (new campaign), 1 rejected" in out
    table = out.splitlines()[1:]
    assert table[0].split()[:3] == ["line", "3", "refused"] and "not valid JSON" in table[0]  # refused lines first
    assert table[1].split()[:6] == ["line", "1", "kept", "item", "1", "(K=3)"] and "ranking by ann" in table[1]
    cli("labels", "export", "--campaign", "outside", "--out", str(tmp_path / "pairs.jsonl"))
    assert len((tmp_path / "pairs.jsonl").read_text().splitlines()) == 6
    capsys.readouterr()
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("garbage\n", encoding="utf-8")
    with pytest.raises(StudioError, match="No row was imported"):
        cli("labels", "import", str(only_bad), "--campaign", "nothing", "--json")
    printed = json.loads(capsys.readouterr().out)
    assert printed["rejected"] == [{"line": 1, "reason": "not valid JSON (Expecting value at column 1): write one "
                                    'JSON object per line, e.g. {"prompt": …, "completions": […], "ranks": […], '
                                    '"annotator": …}'}]
    assert [(r["line"], r["outcome"]) for r in printed["lines"]] == [(1, "refused")]


# --- any K per item, flags re-densified, the per-line report ----------------------------------------------------

def mixed_k_lines(annotator="ann") -> list[str]:
    """One row per K = 2 … 9, ranked best-first in the listed order (no ties, no flags)."""
    return [row(prompt=f"prompt with {k}", completions=[f"answer {i} of {k}" for i in range(k)],
                ranks=list(range(1, k + 1)), annotator=annotator) for k in range(2, 10)]


def test_one_file_mixes_k_2_to_9_and_each_item_keeps_its_own_end_to_end(studio_env):
    from labeling import generation, workbench

    with session_scope(write=True) as s:  # a campaign whose default K (3) fits none but one of the rows
        campaigns.create_campaign(s, "mixed", [f"prompt with {k}" for k in range(2, 10)], k=3, overlap=2)
    report = run(mixed_k_lines(), campaign="mixed")
    assert report["accepted"] == 8 and report["rejected"] == []
    assert [(r["line"], r["k"], r["rankings"]) for r in report["lines"]] == [(k - 1, k, 1) for k in range(2, 10)]
    with session_scope() as s:
        campaign = s.scalar(select(Campaign).where(Campaign.name == "mixed"))
        assert campaigns.campaign_progress(s, campaign.id)["items_ready"] == 8  # complete as imported
        assert generation.items_missing_completions(s, campaign) == []  # never topped up to the default K
    # the workbench serves each item with its own completions, and takes a ranking of exactly those
    seen = []
    with session_scope(write=True) as s:
        zed = workbench.get_or_create_user(s, "zed").id
        task = workbench.next_task(s, campaign.id, zed)
        while task is not None:
            seen.append(len(task.completions))
            assert [c["letter"] for c in task.completions] == list("ABCDEFGHI"[:len(task.completions)])
            ranks = {c["id"]: len(task.completions) - i for i, c in enumerate(task.completions)}
            task = workbench.submit_and_next(s, task.item_id, zed, ranks)["next"]
    assert seen == list(range(2, 10))
    # pairs per item: C(K, 2) for each of its two rankings
    with session_scope() as s:
        rows, stats = export.campaign_rows(s, "mixed")
    assert stats["rankings"] == 16
    for k in range(2, 10):
        assert sum(r["prompt"] == f"prompt with {k}" for r in rows) == 2 * k * (k - 1) // 2
    assert len(rows) == 2 * sum(k * (k - 1) // 2 for k in range(2, 10))


def test_a_new_campaign_takes_its_default_k_from_the_first_row_and_accepts_any_later_k(studio_env):
    report = run(list(reversed(mixed_k_lines())))
    assert report["accepted"] == 8 and report["created"]
    with session_scope() as s:
        assert s.scalar(select(Campaign.k)) == 9
        per_item = s.execute(select(Completion.item_id, func.count()).group_by(Completion.item_id)).all()
    assert sorted(n for _, n in per_item) == list(range(2, 10))


def test_a_flagged_rank_is_ignored_and_the_other_ranks_re_densified(studio_env):
    report = run([row(ranks=(1, 2, 3), flags=[False, True, False]),  # the oven was 2nd, then flagged
                  row(prompt="ties", completions=("a", "b", "c", "d"), ranks=(1, 1, 3, 4), flags=[False, False, True, False]),
                  row(prompt="null", completions=("x", "y", "z"), ranks=(None, 3, 1), flags=[True, False, False])])
    assert report["accepted"] == 3 and report["rejected"] == []
    assert "1 flagged (ranks [1, 3] re-densified to [1, 2])" in report["lines"][0]["detail"]
    with session_scope() as s:
        text = dict(s.execute(select(Completion.id, Completion.text)).all())
        stored = [({text[int(c)]: r for c, r in ranking.ranks.items()}, [text[f] for f in ranking.flags])
                  for ranking in s.scalars(select(Ranking).order_by(Ranking.id))]
    assert stored == [({"open a window": 1, "buy a fan": 2}, ["turn on the oven"]),
                      ({"a": 1, "b": 1, "d": 2}, ["c"]), ({"y": 2, "z": 1}, ["x"])]
    with session_scope() as s:
        rows, _ = export.campaign_rows(s, "imported", margin=True)
    assert [(r["chosen"], r["rejected"], r["margin"]) for r in rows if r["prompt"] == "my house is too hot"] == [
        ("open a window", "buy a fan", 1.0)]


def test_a_gap_without_a_flag_is_still_refused_with_how_to_fix_it(studio_env):
    report = run([row(ranks=(1, 3, 4))])
    assert report["accepted"] == 0 and report["lines"][0]["outcome"] == "refused"
    assert "whole numbers from 1 (best) to 3" in report["lines"][0]["detail"]
    report = run([row(ranks=(1, 3, 3))])
    assert "have gaps: start at 1" in report["lines"][0]["detail"]


def test_page_shows_every_line_kept_or_refused(studio, monkeypatch):
    import streamlit as st
    from page_support import button, open_as, signed_in, texts

    class Upload:
        name = "rankings.jsonl"

        def getvalue(self) -> bytes:
            return "\n".join([*mixed_k_lines()[:3], '{"prompt": "half', row(annotator="")]).encode()

    monkeypatch.setattr(st, "file_uploader", lambda *a, **k: Upload())
    at = open_as("page_label_data.py", signed_in("ada"))
    at.text_input(key="ld-target").input("outside")
    button(at, "Import").click()
    at.run()
    assert not at.exception and not at.error
    assert "Created campaign 'outside': 3 ranking(s) imported, 2 rejected." in texts(at.success)
    table = at.dataframe[0].value
    assert list(table["line"]) == [4, 5, 1, 2, 3] and list(table["outcome"]) == ["refused"] * 2 + ["kept"] * 3
    assert list(table["K"])[2:] == [2, 3, 4]
    assert "not valid JSON" in table["detail"][0] and "annotator must be" in table["detail"][1]
    assert counts()["Ranking"] == 3


def test_gold_items_can_be_imported_with_their_known_best(studio_env):
    from labeling import gold

    report = run([row(gold_best=3), row(prompt="is it cold", gold_best=0), row(prompt="is it warm", gold_best="2"),
                  row(prompt="plain")])
    assert report["accepted"] == 2 and [r["line"] for r in report["rejected"]] == [2, 3]
    assert all("a gold item needs its known best" in r["reason"] for r in report["rejected"])
    with session_scope() as s:
        campaign = s.scalar(select(Campaign.id))
        (only,) = gold.gold_items(s, campaign)
        best = s.get(Completion, only["gold_completion_id"])
    assert best.text == "buy a fan"  # the 3rd completion of its row
