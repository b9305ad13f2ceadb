"""The ``ppo`` job end to end on the tiny model (LoRA, the offline toxicity reward, demo:provocative prompts), and
the settings refused before queueing with a clear reason and no job row."""

import json

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Job, ModelRecord
from backend.errors import StudioError
from jobs import artifacts, queue
from jobs.registry import parse_spec
from jobs.run import main as run_job

STEP_KEYS = {"objective/scores", "objective/kl", "objective/entropy", "objective/non_score_reward",
             "objective/rlhf_reward", "policy/approxkl", "policy/clipfrac", "policy/entropy", "val/loss",
             "val/clipfrac", "loss/policy", "kl_coef"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ppo_spec(**overrides):
    values = {"kind": "ppo", "name": "detox-smoke", "policy_model": "tiny",
              "ppo": {"max_steps": 2, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 2, "learning_rate": 1e-3},
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
              "decoding": {"do_sample": True, "temperature": 1.0, "max_new_tokens": 6},
              "eval_prompts": 4, "samples_per_step": 2}
    values.update(overrides)
    return parse_spec(values)


def submit(spec) -> int:
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


def job_count() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Job))


def test_ppo_job_logs_every_key_and_registers_the_adapter(tiny_model, capsys):
    from safetensors.torch import load_file

    job_id = submit(ppo_spec())
    assert run_job(job_id) == 0
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job.status == "succeeded", job.error
        record = s.get(ModelRecord, job.output_model_id)
        assert record.kind == "adapter" and record.base_model_id == tiny_model.id and record.job_id == job_id
        assert record.meta["method"] == "ppo" and record.meta["reference"] == "tiny"
        assert record.meta["steps"] == 2 and "eval/toxicity" in record.meta["last_eval"]
        metrics = queue.job_metrics(s, job_id)
    for step in (1, 2):
        assert STEP_KEYS <= {m["key"] for m in metrics if m["step"] == step}, step
    assert {"eval/reward", "eval/toxicity", "eval/kl"} <= {m["key"] for m in metrics if m["step"] == 0}
    out = artifacts.job_dir(job_id)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [s["step"] for s in samples] == [1, 1, 2, 2]
    assert all(0.0 <= s["reward"] <= 1.0 and s["prompt"] for s in samples)  # 1 − p(toxic)
    log = capsys.readouterr().out  # the job log (the worker sends the job's stdout there)
    assert "objective/scores=" in log and "  reward +" in log and "→" in log
    weights = load_file(out / "model" / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k), "PPO must move the adapter"
    assert (out / "model" / "value_head.safetensors").is_file()
    summary = json.loads((out / "ppo_summary.json").read_text(encoding="utf-8"))
    assert summary["stopped"] == "max_steps" and summary["first_eval"]["eval/kl"] == 0.0
    # every held-out completion's scores at each evaluation, for paired comparisons on the RLHF page
    held = [json.loads(line) for line in (out / "eval_scores.jsonl").read_text(encoding="utf-8").splitlines()]
    steps = sorted({r["step"] for r in held})
    assert steps[0] == 0 and len(steps) >= 2 and all({"prompt", "reward", "toxicity", "kl"} <= set(r) for r in held)
    assert sum(r["step"] == 0 for r in held) == summary["first_eval"]["eval/completions"]
    assert all(r["kl"] == 0.0 for r in held if r["step"] == 0)  # the policy starts as the reference


def test_stop_threshold_on_held_out_prompts(tiny_model, monkeypatch, capsys):
    import torch

    from backend.settings import reset_settings_cache

    monkeypatch.setenv("STUDIO_JOB_THREADS", "2")
    reset_settings_cache()
    job_id = submit(ppo_spec(ppo={"max_steps": 5, "batch_size": 2, "mini_batch_size": 2, "ppo_epochs": 1},
                             eval_steps=1, eval_prompts=2, eval_samples=3, stop_toxicity=1.0))
    assert run_job(job_id) == 0
    summary = json.loads((artifacts.job_dir(job_id) / "ppo_summary.json").read_text(encoding="utf-8"))
    assert summary["stopped"] == "stop_toxicity" and summary["steps"] == 1
    assert summary["first_eval"]["eval/completions"] == 6  # 2 held-out prompts × 3 samples each
    assert torch.get_num_threads() == 2 and "torch uses 2 CPU thread(s)" in capsys.readouterr().out
    monkeypatch.delenv("STUDIO_JOB_THREADS")
    reset_settings_cache()


@pytest.mark.parametrize(("values", "message"), [
    ({"ppo": {"batch_size": 4, "mini_batch_size": 8}}, "mini_batch_size (8) is larger than batch_size (4)"),
    ({"ppo": {"kl_target": 0}}, "kl_target must be above 0"),
    ({"ppo": {"kl_target": -1.5}}, "kl_target must be above 0"),
    ({"decoding": {"do_sample": False}}, "decoding must sample"),
    ({"stop_reward": 0.9, "eval_prompts": 0}, "held-out prompts"),
    ({"reward": {"source": "classifier", "model": "x"}}, "class_label"),
])
def test_unworkable_settings_are_refused_by_the_spec(values, message):
    with pytest.raises(StudioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ppo_spec(**values)


def test_reference_must_match_the_policy(tiny_model, tmp_path):
    import shutil

    from backend.models.store import add_model

    other = tmp_path / "other"
    shutil.copytree(tiny_model.path, other)
    with session_scope(write=True) as s:
        add_model(s, str(other), name="other")
    before = job_count()
    with pytest.raises(StudioError, match="with LoRA the reference is the policy with its adapters switched off"):
        submit(ppo_spec(reference_model="other"))
    assert job_count() == before
    submit(ppo_spec(reference_model="tiny"))  # naming the policy itself is fine


def _model_with_other_tokenizer(folder, num_labels: int = 1):
    """A tiny sequence classifier whose word-level vocabulary differs from the policy's."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "good", "bad", "movie", "nice"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")
    fast.save_pretrained(folder)
    config = LlamaConfig(vocab_size=6, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=num_labels, pad_token_id=0,
                         id2label={0: "hate", 1: "nothate"} if num_labels == 2 else {0: "LABEL_0"})
    LlamaForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_reward_model_on_a_different_tokenizer_is_refused(tiny_model, tmp_path):
    from backend.models.store import add_model

    with session_scope(write=True) as s:
        add_model(s, str(_model_with_other_tokenizer(tmp_path / "rm")), name="other-rm")
    before = job_count()
    with pytest.raises(StudioError, match="different tokenizer"):
        submit(ppo_spec(reward={"source": "reward_model", "model": "other-rm"}))
    with pytest.raises(StudioError, match="not a reward model"):
        submit(ppo_spec(reward={"source": "reward_model", "model": "tiny"}))
    assert job_count() == before


def test_classifier_reward_uses_the_chosen_class_logit(tiny_model, tmp_path):
    import torch

    from jobs.rl.rewards import ClassifierReward

    folder = _model_with_other_tokenizer(tmp_path / "hate", num_labels=2)  # a classifier reads text: any tokenizer
    with pytest.raises(StudioError, match="class_label 'kind' is not one of"):
        submit(ppo_spec(reward={"source": "classifier", "model": str(folder), "class_label": "kind"}))
    submit(ppo_spec(reward={"source": "classifier", "model": str(folder), "class_label": "nothate"}))
    reward = ClassifierReward(str(folder), "nothate", "cpu")
    texts = ["good movie", "bad movie"]
    with torch.no_grad():
        enc = reward.tokenizer(texts, padding=True, return_tensors="pt")
        expected = reward.model(**enc).logits[:, 1].tolist()
    assert reward(["p", "p"], texts) == pytest.approx(expected)


def test_weighted_sum_of_reward_sources_adds_each_score_times_its_weight(tiny_model, tmp_path):
    from jobs.rl.rewards import ClassifierReward, ToxicityReward, WeightedSum, load_reward_source

    folder = _model_with_other_tokenizer(tmp_path / "hate", num_labels=2)
    spec = ppo_spec(reward={"source": "toxicity", "weight": 0.5,
                            "plus": [{"source": "classifier", "model": str(folder), "class_label": "nothate",
                                      "weight": -2.0}]})
    submit(spec)  # every term is checked at submit time
    reward = load_reward_source(spec.reward, {}, "cpu")
    assert isinstance(reward, WeightedSum) and reward.name.startswith("0.5 × 1 − p(toxic)")
    prompts, texts = ["p", "p"], ["what a lovely day", "shut up, idiot"]
    toxic = ToxicityReward()(prompts, texts)
    logits = ClassifierReward(str(folder), "nothate", "cpu")(prompts, texts)
    assert reward(prompts, texts) == pytest.approx([0.5 * t - 2.0 * c for t, c in zip(toxic, logits, strict=True)])
    assert isinstance(load_reward_source(ppo_spec().reward, {}, "cpu"), ToxicityReward)  # one source: itself

    with pytest.raises(StudioError, match="class_label 'kind' is not one of"):  # a bad term is named at submit
        submit(ppo_spec(reward={"plus": [{"source": "classifier", "model": str(folder), "class_label": "kind"}]}))
    with pytest.raises(StudioError, match="reward.plus.0: source reward_model needs `model`"):
        ppo_spec(reward={"plus": [{"source": "reward_model"}]})
    with pytest.raises(StudioError, match="reward.weight"):
        ppo_spec(reward={"weight": 1e9})


def test_ppo_trains_on_a_weighted_sum_of_sources(tiny_model, capsys):
    job_id = submit(ppo_spec(ppo={"max_steps": 1, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1},
                             eval_prompts=0, reward={"weight": 0.5, "plus": [{"source": "toxicity", "weight": 0.5}]}))
    assert run_job(job_id) == 0
    assert "reward: 0.5 × 1 − p(toxic) (profanity classifier) + 0.5 × 1 − p(toxic)" in capsys.readouterr().out


def test_best_weights_keep_the_best_evaluation_within_the_kl_limit():
    import torch

    from jobs.rl.best import BestWeights

    module = torch.nn.Linear(2, 1)
    module.bias.requires_grad_(False)  # frozen weights are not kept (the reference part of a LoRA model)
    keeper = BestWeights(module, kl_limit=4.0)

    def rows(reward, kl):
        return [{"reward": reward, "kl": kl, "toxicity": 1 - reward}] * 3

    def set_weight(value):
        with torch.no_grad():
            module.weight.fill_(value)

    set_weight(0.0)
    assert not keeper.offer(0, rows(0.9, 0.0))  # the start is not a result
    set_weight(1.0)
    assert keeper.offer(10, rows(0.5, 2.0))
    set_weight(2.0)
    assert keeper.offer(20, rows(0.7, 3.9))
    set_weight(3.0)
    assert not keeper.offer(30, rows(0.9, 5.7))  # better reward, but the KL is over the limit
    set_weight(4.0)
    assert not keeper.offer(40, rows(0.6, 1.0))  # within the limit, but worse
    keeper.restore()
    assert keeper.step == 20 and keeper.scores["eval/kl"] == pytest.approx(3.9)
    assert torch.all(module.weight == 2.0)


def test_keep_best_saves_the_kept_step(tiny_model):
    spec = ppo_spec(keep_best=True, eval_steps=1, ppo={"max_steps": 3, "batch_size": 4, "mini_batch_size": 2,
                                                        "ppo_epochs": 2, "learning_rate": 1e-3, "kl_target": 100.0})
    job_id = submit(spec)
    assert run_job(job_id) == 0
    summary = json.loads((artifacts.job_dir(job_id) / "ppo_summary.json").read_text(encoding="utf-8"))
    held = [json.loads(line) for line in
            (artifacts.job_dir(job_id) / "eval_scores.jsonl").read_text(encoding="utf-8").splitlines()]
    by_step = {}
    for row in held:
        by_step.setdefault(row["step"], []).append(row["reward"])
    best_step = max((s for s in by_step if s > 0), key=lambda s: (sum(by_step[s]) / len(by_step[s]), -s))
    assert summary["kept_step"] == best_step
    with session_scope() as s:
        record = s.get(ModelRecord, s.get(Job, job_id).output_model_id)
        assert record.meta["kept_step"] == best_step


def test_keep_best_needs_held_out_evaluations():
    with pytest.raises(StudioError, match="keep_best picks among held-out evaluations"):
        ppo_spec(keep_best=True, eval_steps=0)
