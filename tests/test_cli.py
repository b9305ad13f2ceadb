"""The `studio` command line: generate, models, eval metrics; user errors exit 2 without a traceback."""

import json
import subprocess
import sys

import pytest
from factories import run_cli


def test_generate_json_reports_text_tokens_timing_and_settings(tiny_model, capsys):
    code, out, _ = run_cli(["generate", "--model", "tiny", "--prompt", "hello", "--max-new-tokens", "5",
                            "--do-sample", "--top-k", "5", "--seed", "3", "--num-return-sequences", "2",
                            "--stop", "zz", "--stop", "yy", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert len(data["completions"]) == 2
    first = data["completions"][0]
    assert {"text", "prompt_tokens", "completion_tokens", "seconds", "tokens_per_second"} <= set(first)
    assert first["settings"]["top_k"] == 5 and first["settings"]["stop"] == ["zz", "yy"]


def test_generate_bad_input_exits_2_with_message(tiny_model, capsys):
    code, _, err = run_cli(["generate", "--model", "tiny", "--prompt", "hi", "--num-beams", "2",
                            "--num-return-sequences", "3"], capsys)
    assert code == 2 and "num_beams" in err and "Traceback" not in err
    code, _, err = run_cli(["generate", "--model", "nope", "--prompt", "hi"], capsys)
    assert code == 2 and "Unknown model" in err
    code, _, err = run_cli(["generate", "--model", "tiny", "--prompt", ""], capsys)
    assert code == 2 and "empty" in err


def test_models_list_shows_lineage(tiny_model, capsys):
    code, out, _ = run_cli(["models", "list", "--json"], capsys)
    assert code == 0 and [m["name"] for m in json.loads(out)] == ["tiny"]


def test_eval_metrics_course_examples(tmp_path, capsys):
    preds = tmp_path / "p.txt"
    refs = tmp_path / "r.txt"
    preds.write_text("It is very cold outside\nI am very happy that I am drinking a cup of tea\n")
    refs.write_text("It is cold outside\nI am very happy to say that I am drinking a warm cup of tea\n")
    code, out, _ = run_cli(["eval", "metrics", "--predictions", str(preds), "--references", str(refs), "--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert data["per_example"][0]["rouge1"] == pytest.approx(0.889, abs=1e-3)
    assert 0 <= data["bleu"] <= 1 and 0 <= data["toxicity"] <= 1
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert 0 <= data[key] <= 1


def test_eval_metrics_mismatched_and_non_utf8(tmp_path, capsys):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one\ntwo\n")
    b.write_text("one\n")
    code, _, err = run_cli(["eval", "metrics", "--predictions", str(a), "--references", str(b)], capsys)
    assert code == 2 and "2 lines" in err
    b.write_bytes(b"\xff\xfe\xfa\n\xff\n")
    code, _, err = run_cli(["eval", "metrics", "--predictions", str(a), "--references", str(b)], capsys)
    assert code == 2 and "UTF-8" in err


def test_help_is_fast_and_imports_no_heavy_library():
    probe = ("import sys, cli.main as c; c.build_parser(); "
             "print([m for m in ('torch','transformers','trl','datasets','streamlit') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for deeper, subsub in _subparsers(sub):
                    yield f"{name} {deeper}", subsub


def test_every_command_prints_its_help():
    """argparse formats help strings with %: a bare "95 %" once made `studio eval --help` a traceback."""
    from cli.main import build_parser

    parser = build_parser()
    commands = dict(_subparsers(parser))
    assert {"eval", "eval compare", "labels leaderboard", "job submit"} <= set(commands)
    for name, sub in [("studio", parser), *commands.items()]:
        assert sub.format_help(), name
