"""`studio generate` template flags: --template, --examples, --shots, --var, --cot; malformed example files."""

import argparse
import json

import pytest

from backend.errors import StudioError
from cli.prompt_flags import add_template_flags, apply_template, read_examples_file


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_template_flags(parser)
    return parser.parse_args(list(argv))


def test_no_flags_pass_text_through():
    args = parse()
    assert apply_template(args, "hello") == "hello" and args.template_label is None


def test_template_shots_vars_cot_and_examples_file(studio_env, tmp_path):
    few = parse("--template", "sentiment", "--shots", "2")
    assert apply_template(few, "Who would use this product?").endswith(
        "I don't like this chair\nSentiment: Negative\n\nClassify this review:\nWho would use this product?\nSentiment:")
    assert few.template_label == "sentiment · few-shot (2)"
    tr = parse("--template", "translate", "--var", "target_language=German")
    assert apply_template(tr, "Good night").endswith("English: Good night\nGerman:")
    assert apply_template(parse("--template", "cot-zero-shot", "--cot"), "2+2?").endswith("Let's think step by step.")
    examples = tmp_path / "shots.jsonl"
    examples.write_text("\n".join(json.dumps({"review": r, "sentiment": s})
                                  for r, s in [("Awful.", "Negative"), ("Lovely!", "Positive"), ("Meh.", "Neutral")]))
    prompt = apply_template(parse("--template", "sentiment", "--examples", str(examples)), "Fine.")
    assert prompt.count("Classify this review") == 4 and "Sentiment: Neutral" in prompt  # default: all examples
    csv_file = tmp_path / "shots.csv"
    csv_file.write_text("review,sentiment\nAwful.,Negative\n")
    assert "Awful." in apply_template(parse("--template", "sentiment", "--examples", str(csv_file), "--shots", "1"), "x")


@pytest.mark.parametrize("name,content,message", [
    ("bad.jsonl", '{"review": "ok", "sentiment": "Positive"}\n{not json\n', "line 2: not valid JSON"),
    ("bad.json", '{"review": "ok"}', "JSON list"),
    ("bad.json", "[1, 2]", "example 1 is not an object"),
    ("empty.jsonl", "\n\n", "no examples"),
    ("shots.txt", "x", ".jsonl, .json or .csv"),
])
def test_malformed_example_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(StudioError, match=message):
        read_examples_file(str(path))


def test_bad_flag_combinations(studio_env, tmp_path):
    missing = tmp_path / "missing.jsonl"
    incomplete = tmp_path / "incomplete.jsonl"
    incomplete.write_text(json.dumps({"review": "no label"}) + "\n")
    cases = [(parse("--shots", "2"), "need a --template"), (parse("--template", "nope"), "Unknown template"),
             (parse("--template", "sentiment", "--examples", str(missing)), "No examples file"),
             (parse("--template", "sentiment", "--examples", str(incomplete)), "Example 1"),
             (parse("--template", "translate", "--var", "oops"), "NAME=VALUE"),
             (parse("--template", "sentiment", "--shots", "-1"), "0 or more")]
    for args, message in cases:
        with pytest.raises(StudioError, match=message):
            apply_template(args, "text")
    bad_utf8 = tmp_path / "latin1.jsonl"
    bad_utf8.write_bytes(b'{"review": "caf\xe9", "sentiment": "Positive"}\n')
    with pytest.raises(StudioError, match="UTF-8"):
        read_examples_file(str(bad_utf8))


def test_studio_generate_with_template_end_to_end(tiny_model, capsys):
    from cli.main import main

    main(["generate", "--model", "tiny", "--prompt", "Who would use this product?", "--template", "sentiment",
          "--shots", "2", "--max-new-tokens", "4", "--do-sample", "--seed", "1", "--stop", "\n", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert "I loved this movie!" in out["prompt"] and out["prompt"].count("Classify this review") == 3
    assert out["completions"][0]["settings"]["seed"] == 1 and "seconds" in out["completions"][0]
