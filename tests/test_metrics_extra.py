"""Extra evaluation metrics come from an allow-list: paths and hub ids are refused with a message, and submitting
never imports or runs metric code (``evaluate.load`` ran a metric folder's Python inside the CLI/web process)."""

import subprocess
import sys

import pytest
from factories import write_dialogues

from backend.db.engine import session_scope
from backend.errors import StudioError
from backend.metrics.extra import EXTRA_METRICS, check_extra_metric, compute_extra_metric
from jobs import queue
from jobs.registry import parse_spec


def test_allow_listed_metrics_compute_offline():
    preds, refs = ["the cat sat on the mat", "hello"], ["the cat is on the mat", "hello"]
    assert compute_extra_metric("exact_match", preds, refs) == {"exact_match": 0.5}
    assert compute_extra_metric("wer", preds, refs) == {"wer": pytest.approx(1 / 7)}  # one substitution, 7 words
    assert 0 < compute_extra_metric("chrf", preds, refs)["chrf"] < 100
    assert 0 < compute_extra_metric("SacreBLEU", preds, refs)["sacrebleu"] < 100
    assert compute_extra_metric("ter", preds, refs)["ter"] > 0
    assert set(EXTRA_METRICS) == {"exact_match", "chrf", "sacrebleu", "ter", "wer"}


@pytest.mark.parametrize(("name", "message"), [
    ("./my_metric", "looks like a path or hub id"),
    ("/tmp/evil_metric", "looks like a path or hub id"),
    ("evil_metric.py", "looks like a path or hub id"),
    ("~/metrics/x", "looks like a path or hub id"),
    ("someone/accuracy", "looks like a path or hub id"),
    ("C:\\metrics\\x", "looks like a path or hub id"),
    ("bertscore", "unknown metric 'bertscore'"),
    ("", "give metric names"),
])
def test_paths_hub_ids_and_unknown_names_are_refused(name, message):
    with pytest.raises(StudioError, match=message) as err:
        check_extra_metric(name)
    assert "exact_match" in str(err.value)  # says what to use instead


def test_spec_refuses_a_metric_folder_without_running_it(tmp_path):
    """The old hole: a metric folder whose script writes a file when imported. Parsing the spec refuses it and the
    script never runs."""
    folder = tmp_path / "pwn"
    folder.mkdir()
    marker = tmp_path / "ran.txt"
    (folder / "pwn.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n", encoding="utf-8")
    with pytest.raises(StudioError, match="extra_metrics.*looks like a path or hub id"):
        parse_spec({"kind": "eval", "extra_metrics": [str(folder)]})
    assert not marker.exists()


def test_known_names_are_normalized_and_deduplicated():
    spec = parse_spec({"kind": "eval", "extra_metrics": ["exact-match", "exact_match", " CHRF "]})
    assert spec.extra_metrics == ["exact_match", "chrf"]


def test_submit_refuses_unknown_metric(tiny_model, tmp_path):
    from jobs.specs import EvalSpec

    spec = EvalSpec.model_validate({"model": "tiny", "dataset": str(write_dialogues(tmp_path / "d", {"test": 2})),
                                    "max_examples": 2, "extra_metrics": ["exact_match"]})
    spec.extra_metrics.append("someone/metric")  # slipped past validation (e.g. a spec built in code)
    with pytest.raises(StudioError, match="looks like a path or hub id"), session_scope(write=True) as s:
        queue.submit(s, spec)


def test_submitting_from_the_cli_imports_no_metric_library(studio_env, tmp_path):
    """`studio job submit` with a path in extra_metrics: one clear line, exit 2, evaluate never imported."""
    spec = tmp_path / "eval.yaml"
    spec.write_text(f"kind: eval\nextra_metrics: [{tmp_path / 'metric'}]\n", encoding="utf-8")
    probe = ("import sys, runpy\nsys.argv = ['studio', 'job', 'submit', sys.argv[1]]\n"
             "try:\n    runpy.run_module('cli.main', run_name='__main__')\n"
             "finally:\n    print('evaluate imported' if 'evaluate' in sys.modules else 'evaluate not imported')\n")
    done = subprocess.run([sys.executable, "-c", probe, str(spec)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 2, done.stderr
    assert "looks like a path or hub id" in done.stderr and "Traceback" not in done.stderr
    assert "evaluate not imported" in done.stdout
