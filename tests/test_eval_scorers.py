"""Evaluation beyond ROUGE/BLEU on the tiny model: perplexity of the references, a neural toxicity classifier,
allow-listed extra metrics, prompt-tuning adapters, and submit-time refusals (an unknown metric, a classifier that
cannot load, an adapter that does not fit its base)."""

import pytest
from factories import write_dialogues
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import EvalResult, EvalRun, Job
from backend.errors import StudioError
from backend.models.store import register_model
from jobs import queue
from jobs.run import main as run_job
from jobs.specs import EvalSpec


def write_dataset(folder, n=4):
    return write_dialogues(folder, {"test": n})


def eval_spec(data, **values) -> EvalSpec:
    return EvalSpec.model_validate({"model": "tiny", "dataset": str(data), "batch_size": 4, "max_examples": 4,
                                    "decoding": {"max_new_tokens": 6}, **values})


def run(spec: EvalSpec) -> tuple[Job, EvalRun | None, list[EvalResult]]:
    with session_scope(write=True) as s:
        job_id = queue.submit(s, spec).id
    run_job(job_id)
    with session_scope() as s:
        job = s.get(Job, job_id)
        row = s.scalar(select(EvalRun).where(EvalRun.job_id == job_id))
        results = list(s.scalars(select(EvalResult).where(EvalResult.eval_run_id == row.id))) if row else []
        return job, row, results


@pytest.fixture
def classifier_dir(tmp_path, tiny_model_dir):
    """A tiny sequence classifier whose score head is zero: every text is 50% toxic (unlike the profanity model)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    folder = tmp_path / "toxicity-clf"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=2,
                         id2label={0: "nothate", 1: "hate"}, label2id={"nothate": 0, "hate": 1},
                         pad_token_id=tok.pad_token_id)
    model = LlamaForSequenceClassification(config)
    torch.nn.init.zeros_(model.score.weight)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_perplexity_neural_toxicity_and_extra_metric(tiny_model, tmp_path, classifier_dir):
    job, row, results = run(eval_spec(write_dataset(tmp_path / "data"), toxicity_model=str(classifier_dir),
                                      toxic_label="hate", extra_metrics=["exact_match", "chrf"],
                                      decoding={"max_new_tokens": 8, "do_sample": True, "seed": 0}))
    assert job.status == "succeeded", job.error
    assert row.metrics["perplexity"] > 1  # a random model is far from certain of the references
    assert row.metrics["exact_match"] == 0.0
    assert 0 <= row.metrics["chrf"] <= 100
    # the classifier's zero head says 50% for any text; a blank completion scores 0 (nothing to classify)
    expected = [0.5 if r.prediction.strip() else 0.0 for r in results]
    assert 0.5 in expected
    assert [r.scores["toxicity"] for r in results] == pytest.approx(expected)
    assert row.metrics["toxicity"] == pytest.approx(sum(expected) / 4)
    with session_scope() as s:
        keys = {m["key"] for m in queue.job_metrics(s, job.id)}
    assert {"eval/perplexity", "eval/exact_match", "eval/chrf", "eval/toxicity"} <= keys


@pytest.mark.parametrize(("values", "match"), [
    ({"toxicity_model": "someone/no-such-classifier"}, "toxicity_model.*local folder"),
])
def test_unloadable_scorers_are_refused_at_submit(tiny_model, tmp_path, values, match):
    with pytest.raises(StudioError, match=match), session_scope(write=True) as s:
        queue.submit(s, eval_spec(write_dataset(tmp_path / "data"), **values))


def make_adapter(base_dir, out, method="lora"):
    from peft import LoraConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = (LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM") if method == "lora"
              else PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    get_peft_model(model, config).save_pretrained(out)
    return out


def other_base(folder, tiny_model_dir):
    """A model with the tiny model's tokenizer but another width: adapters of 'tiny' do not fit it."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_adapter_on_a_different_base_is_refused(tiny_model, tiny_model_dir, tmp_path, method):
    adapter = make_adapter(tiny_model_dir, tmp_path / "adapter", method)
    with session_scope(write=True) as s:
        wide = register_model(s, "narrow", str(other_base(tmp_path / "narrow", tiny_model_dir)))
        register_model(s, "misfit", str(adapter), kind="adapter", base_model_id=wide.id)
    with pytest.raises(StudioError, match="'misfit' does not fit base model 'narrow'.*different base"), \
            session_scope(write=True) as s:
        queue.submit(s, eval_spec(write_dataset(tmp_path / "data"), model="misfit"))


def test_prompt_tuning_adapter_evaluates(tiny_model, tiny_model_dir, tmp_path):
    adapter = make_adapter(tiny_model_dir, tmp_path / "soft-prompt", "prompt_tuning")
    with session_scope(write=True) as s:
        register_model(s, "soft", str(adapter), kind="adapter", base_model_id=tiny_model.id)
    job, row, results = run(eval_spec(write_dataset(tmp_path / "data"), model="soft"))
    assert job.status == "succeeded", job.error
    assert row.model_name == "soft" and row.metrics["perplexity"] > 1 and len(results) == 4
    assert all(isinstance(r.prediction, str) for r in results)
