"""`studio eval metrics` reproduces the course's worked examples (ROUGE on "It is cold outside", BLEU 0.495)."""

import json

import pytest

from cli.main import main


def test_course_examples_through_the_cli(tmp_path, capsys):
    preds, refs = tmp_path / "predictions.txt", tmp_path / "references.txt"
    preds.write_text("It is very cold outside\nI am very happy that I am drinking a cup of tea\n", encoding="utf-8")
    refs.write_text("It is cold outside\nI am very happy to say that I am drinking a warm cup of tea\n",
                    encoding="utf-8")
    main(["eval", "metrics", "--predictions", str(preds), "--references", str(refs), "--json"])
    cold, tea = json.loads(capsys.readouterr().out)["per_example"]
    assert cold["rouge1"] == pytest.approx(2 * 0.8 * 1.0 / 1.8)  # R 1.0, P 0.8 → F1 0.889
    assert cold["rouge2"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # R 2/3, P 0.5 → F1 0.571
    assert cold["rougeL"] == pytest.approx(cold["rouge1"])  # true LCS ("it is … cold outside") = 4
    assert tea["bleu"] == pytest.approx(0.495, abs=5e-4)

    preds.write_text("I am very happy that I am drinking a cup of tea\n", encoding="utf-8")
    refs.write_text("I am very happy to say that I am drinking a warm cup of tea\n", encoding="utf-8")
    main(["eval", "metrics", "--predictions", str(preds), "--references", str(refs)])
    assert "bleu         0.4953" in capsys.readouterr().out  # corpus BLEU of one pair = the course's 0.495
