"""The ``grpo`` job (TRL's GRPOTrainer) on the tiny model with our reward sources: it logs TRL's group metrics,
writes scored samples, moves the LoRA adapter and registers it; unworkable settings are refused before queueing."""

import json

import pytest
from sqlalchemy import func, select

from backend.db.engine import session_scope
from backend.db.tables import Job, ModelRecord
from backend.errors import StudioError
from jobs import artifacts, queue
from jobs.registry import parse_spec
from jobs.run import main as run_job
from jobs.runners.grpo import make_reward_func

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def grpo_spec(**overrides):
    values = {"kind": "grpo", "name": "grpo-smoke", "policy_model": "tiny", "max_steps": 2, "batch_size": 4,
              "num_generations": 2, "max_new_tokens": 6, "learning_rate": 1e-2,
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}
    values.update(overrides)
    return parse_spec(values)


def test_grpo_job_trains_logs_and_registers_the_adapter(tiny_model):
    from safetensors.torch import load_file

    with session_scope(write=True) as s:
        job_id = queue.submit(s, grpo_spec()).id
    assert run_job(job_id) == 0
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job.status == "succeeded", job.error
        record = s.get(ModelRecord, job.output_model_id)
        assert record.kind == "adapter" and record.base_model_id == tiny_model.id
        assert record.meta["method"] == "grpo" and record.meta["num_generations"] == 2
        keys = {(m["step"], m["key"]) for m in queue.job_metrics(s, job_id)}
    for step in (1, 2):
        assert {(step, "reward"), (step, "reward_std"), (step, "rewards/toxicity/mean")} <= keys, sorted(keys)
    out = artifacts.job_dir(job_id)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {s["step"] for s in samples} == {1, 2}
    assert all(0.0 <= s["reward"] <= 1.0 and s["prompt"] for s in samples)  # 1 − p(toxic) on demo prompts
    weights = load_file(out / "model" / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k), "GRPO must move the adapter"


def test_reward_func_reads_conversations_and_plain_text(tmp_path):
    seen = []

    def source(prompts, completions, ids):
        seen.append((prompts, completions))
        return [len(c) for c in completions]

    reward = make_reward_func(source, tmp_path / "samples.jsonl", lambda: 3)
    chat = reward([[{"role": "user", "content": "hi"}]], [[{"role": "assistant", "content": "hello"}]])
    plain = reward(["hi"], ["hey"], completion_ids=[[1, 2]])
    assert chat == [5.0] and plain == [3.0]
    assert seen == [(["hi"], ["hello"]), (["hi"], ["hey"])]
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in rows] == [3, 3] and rows[0]["completion"] == "hello"


@pytest.mark.parametrize(("values", "message"), [
    ({"batch_size": 6, "num_generations": 4}, "batch_size .6. must be a multiple of num_generations .4."),
    ({"num_generations": 1}, "greater than or equal to 2"),
    ({"reward": {"source": "reward_model"}}, "needs `model`"),
])
def test_unworkable_settings_are_refused_by_the_spec(values, message):
    with pytest.raises(StudioError, match=message):
        grpo_spec(**values)


def test_missing_split_and_non_reward_model_are_refused_before_queueing(tiny_model, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "hello"}\n', encoding="utf-8")
    cases = [(grpo_spec(prompts=str(prompts), split="validation"), "has no 'validation' split"),
             (grpo_spec(reward={"source": "reward_model", "model": "tiny"}), "is not a reward model")]
    for spec, message in cases:
        with pytest.raises(StudioError, match=message), session_scope(write=True) as s:
            queue.submit(s, spec)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
