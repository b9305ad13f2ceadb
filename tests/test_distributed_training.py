"""Data-parallel jobs on 2 CPU processes (torchrun, gloo) with the tiny random Llama: gradients really are averaged
(one step on 2 ranks × batch b equals one step on 1 process × batch 2b), every rank ends with the same weights,
rank 0 alone writes metric rows and the model, a failing rank fails the job with its own error, and a cancel stops
every rank."""

import json
import os
import textwrap
import threading
import time

import pytest
from factories import job_row, write_dialogues

from backend.db.engine import session_scope
from jobs import artifacts, queue
from jobs.distributed import RANKS_DIR
from jobs.registry import parse_spec
from jobs.run import main as run_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def submit(spec) -> int:
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


def sft_spec(data, batch_size: int, processes: int, max_steps: int = 1, **train):
    return parse_spec({
        "kind": "sft", "name": f"dp{processes}", "base_model": "tiny", "dataset": str(data), "max_eval_examples": 0,
        "train": {"max_steps": max_steps, "batch_size": batch_size, "learning_rate": 1e-2, "warmup_ratio": 0.0,
                  "max_length": 64, "logging_steps": 1, "seed": 7, **train},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "resources": {"processes": processes}})


def adapter(job_id: int) -> dict:
    from safetensors.torch import load_file

    return load_file(artifacts.job_dir(job_id) / "model" / "adapter_model.safetensors")


def metric_rows(job_id: int) -> list[dict]:
    with session_scope() as s:
        return queue.job_metrics(s, job_id)


def rank_outcomes(job_id: int) -> dict[int, dict]:
    folder = artifacts.job_dir(job_id) / RANKS_DIR
    return {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in folder.glob("rank-*.json")}


def rank_pids(job_id: int) -> list[int]:
    return [int(p.read_text()) for p in (artifacts.job_dir(job_id) / RANKS_DIR).glob("rank-*.pid")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_ranks_average_gradients_like_one_process_with_the_whole_batch(tiny_model, tmp_path):
    import torch

    data = write_dialogues(tmp_path / "data", {"train": 8})
    single = submit(sft_spec(data, batch_size=4, processes=1))
    assert run_job(single) == 0, job_row(single).error
    pair = submit(sft_spec(data, batch_size=2, processes=2))
    assert run_job(pair) == 0, job_row(pair).error

    job = job_row(pair)
    assert job.status == "succeeded" and job.output_model_id is not None
    one, two = adapter(single), adapter(pair)
    assert one.keys() == two.keys()
    moved = [k for k in one if "lora_B" in k and one[k].abs().sum() > 0]
    assert moved, "the step must have moved the adapters"
    for key in one:  # same examples, same averaged gradient, same AdamW step
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=key)

    def values(job_id, key):
        return [m["value"] for m in metric_rows(job_id) if m["key"] == key and m["step"] == 1]

    assert len(values(pair, "loss")) == 1 and len(values(pair, "grad_norm")) == 1, "rank 0 writes each row once"
    assert values(pair, "loss")[0] == pytest.approx(values(single, "loss")[0], rel=1e-4)
    assert values(pair, "grad_norm")[0] == pytest.approx(values(single, "grad_norm")[0], rel=1e-3)
    outcomes = rank_outcomes(pair)
    assert {r: o["status"] for r, o in outcomes.items()} == {0: "succeeded", 1: "succeeded"}
    assert outcomes[0]["weights_digest"] == outcomes[1]["weights_digest"] is not None, "the ranks' weights differ"
    assert (artifacts.job_dir(pair) / RANKS_DIR / "rank-1.log").is_file()
    assert not any(alive(pid) for pid in rank_pids(pair))


BREAK_RANK_1 = """
import os

if os.environ.get("RANK") == "1" and os.environ.get("STUDIO_RANK_OF_JOB"):
    import jobs.callbacks

    def broken(self, args, state, control, **kwargs):
        raise RuntimeError("rank 1 broke on purpose")

    jobs.callbacks.StudioCallback.on_step_end = broken
"""


def test_a_failing_rank_fails_the_job_with_its_own_error(tiny_model, tmp_path, monkeypatch):
    # a sitecustomize on the ranks' path breaks rank 1 only, after its first step's backward pass
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(textwrap.dedent(BREAK_RANK_1), encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")])))
    job_id = submit(sft_spec(write_dialogues(tmp_path / "data", {"train": 8}), batch_size=2, processes=2,
                             max_steps=3))
    assert run_job(job_id) == 1
    job = job_row(job_id)
    assert job.status == "failed" and job.output_model_id is None
    assert job.error.startswith("Rank 1 of 2 failed: RuntimeError: rank 1 broke on purpose"), job.error
    assert "rank 1 broke on purpose" in (artifacts.job_dir(job_id) / RANKS_DIR / "rank-1.log").read_text()
    assert not (artifacts.job_dir(job_id) / "model").exists()
    assert not any(alive(pid) for pid in rank_pids(job_id))


def test_cancel_stops_every_rank(tiny_model, tmp_path):
    job_id = submit(sft_spec(write_dialogues(tmp_path / "data", {"train": 8}), batch_size=2, processes=2,
                             max_steps=500))
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("code", run_job(job_id)))
    runner.start()
    deadline = time.monotonic() + 120
    while not any(m["key"] == "loss" for m in metric_rows(job_id)):  # both ranks are training
        assert runner.is_alive() and time.monotonic() < deadline, job_row(job_id).error
        time.sleep(0.5)
    pids = rank_pids(job_id)
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    with session_scope(write=True) as s:
        queue.request_cancel(s, job_id)
    runner.join(timeout=90)
    assert not runner.is_alive()
    job = job_row(job_id)
    assert job.status == "cancelled", job.error
    assert result["code"] == 0 and job.output_model_id is None
    assert {o["status"] for o in rank_outcomes(job_id).values()} == {"cancelled"}  # they stopped together
    assert not any(alive(pid) for pid in pids)
    steps = [m["step"] for m in metric_rows(job_id) if m["key"] == "loss"]
    assert len(steps) == len(set(steps)) and max(steps) < 500


def test_ppo_on_two_ranks_keeps_one_policy_and_one_kl_coefficient(tiny_model):
    spec = parse_spec({
        "kind": "ppo", "name": "dp-ppo", "policy_model": "tiny", "resources": {"processes": 2},
        "ppo": {"max_steps": 2, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1, "learning_rate": 1e-3,
                "adaptive_kl": True, "kl_target": 0.01},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "decoding": {"do_sample": True, "max_new_tokens": 6},
        "eval_prompts": 2, "samples_per_step": 2})
    job_id = submit(spec)
    assert run_job(job_id) == 0, job_row(job_id).error
    job = job_row(job_id)
    assert job.status == "succeeded" and job.output_model_id is not None
    rows = metric_rows(job_id)
    for step in (1, 2):
        keys = [m["key"] for m in rows if m["step"] == step]
        assert "objective/kl" in keys and len(keys) == len(set(keys)), f"rank 0 writes step {step} once"
    outcomes = rank_outcomes(job_id)
    assert {o["status"] for o in outcomes.values()} == {"succeeded"} and len(outcomes) == 2
    # each rank rolled out other prompts: equal weights mean the gradients were averaged; equal β that the KL
    # statistics were gathered before the controller moved
    assert outcomes[0]["weights_digest"] == outcomes[1]["weights_digest"] is not None
    assert outcomes[0]["kl_coef"] == outcomes[1]["kl_coef"] != 0.05
    beta = [m["value"] for m in rows if m["key"] == "kl_coef"]
    assert len(beta) == 2
    samples = (artifacts.job_dir(job_id) / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 4, "rank 0 alone writes its samples"



def ppo_spec(prompts, processes: int):
    # top-k 1 (greedy) rollouts of a fixed length on prompts of one token length: each rank's completions and token counts
    # are those of the same rows in the 1-process run, so the only difference left is where gradients are summed
    return parse_spec({
        "kind": "ppo", "name": f"ppo-dp{processes}", "policy_model": "tiny", "prompts": str(prompts),
        "resources": {"processes": processes}, "eval_prompts": 0, "samples_per_step": 2,
        "ppo": {"max_steps": 1, "batch_size": 4, "mini_batch_size": 4, "ppo_epochs": 3, "learning_rate": 1e-2,
                "seed": 5},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "decoding": {"do_sample": True, "top_k": 1, "min_new_tokens": 6, "max_new_tokens": 6}})


def test_ppo_on_two_ranks_steps_like_one_process_with_the_whole_batch(tiny_model, tmp_path):
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model.path)
    by_length: dict[int, list[str]] = {}
    for c in "0123456789qxzjkv":
        prompt = f"say something {c}"
        by_length.setdefault(len(tokenizer(prompt).input_ids), []).append(prompt)
    prompts = max(by_length.values(), key=len)[:4]
    assert len(prompts) == 4, "four prompts of one token length: no padding"
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")

    single = submit(ppo_spec(folder, processes=1))
    assert run_job(single) == 0, job_row(single).error
    pair = submit(ppo_spec(folder, processes=2))
    assert run_job(pair) == 0, job_row(pair).error

    one, two = adapter(single), adapter(pair)
    assert one.keys() == two.keys()
    assert any(one[k].abs().sum() > 0 for k in one if "lora_B" in k), "the step must have moved the adapters"
    # three Adam updates on the same mini-batch: their size depends on the gradients' magnitudes, not only signs
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-3, atol=1e-5, msg=key)
    outcomes = rank_outcomes(pair)
    assert outcomes[0]["weights_digest"] == outcomes[1]["weights_digest"] is not None

    def value(job_id, key):
        (row,) = [m["value"] for m in metric_rows(job_id) if m["key"] == key and m["step"] == 1]
        return row

    for key in ("objective/scores", "objective/kl", "val/loss", "completion_length"):
        assert value(pair, key) == pytest.approx(value(single, key), rel=1e-3, abs=1e-6), key


def test_stopping_the_job_process_takes_every_rank_down(tiny_model, tmp_path):
    import signal
    import subprocess
    import sys

    job_id = submit(sft_spec(write_dialogues(tmp_path / "data", {"train": 8}), batch_size=2, processes=2,
                             max_steps=500))
    job_process = subprocess.Popen([sys.executable, "-m", "jobs.run", str(job_id)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not any(m["key"] == "loss" for m in metric_rows(job_id)):
            assert job_process.poll() is None and time.monotonic() < deadline, job_row(job_id).error
            time.sleep(0.5)
        pids = rank_pids(job_id)
        assert len(pids) == 2
        job_process.send_signal(signal.SIGTERM)  # what the worker does when it stops
        assert job_process.wait(timeout=60) != 0
    finally:
        if job_process.poll() is None:
            job_process.kill()
    deadline = time.monotonic() + 10  # (killed ranks are reaped by init a moment later)
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in pids)
    job = job_row(job_id)
    assert job.status == "failed" and "interrupted" in job.error

# --- submit-time checks (no processes started) ------------------------------------------------------------------


def refusal(spec: dict, monkeypatch, cores: int = 4) -> str:
    from backend.errors import StudioError
    from jobs.distributed_checks import check_resources

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    with pytest.raises(StudioError) as info:
        check_resources(parse_spec(spec))
    return str(info.value)


SFT = {"kind": "sft", "base_model": "tiny", "dataset": "x"}


def test_resources_the_job_cannot_use_are_refused_with_the_fix(monkeypatch):
    from jobs.distributed_checks import check_resources

    assert "eval jobs run in one process" in refusal({"kind": "eval", "model": "tiny",
                                                      "resources": {"processes": 2}}, monkeypatch)
    assert "this machine has 2 CPU core(s)" in refusal({**SFT, "resources": {"devices": "cpu", "processes": 3}},
                                                       monkeypatch, cores=2)
    assert "set processes to 2" in refusal({**SFT, "resources": {"devices": "cuda", "gpus": 2, "processes": 4}},
                                           monkeypatch)
    lora_fsdp = {**SFT, "resources": {"devices": "cuda", "gpus": 2, "strategy": "fsdp"}}
    assert "shards full fine-tuning (peft none)" in refusal(lora_fsdp, monkeypatch)
    cpu_fsdp = {**SFT, "peft": "none", "resources": {"devices": "cpu", "processes": 2, "strategy": "fsdp"}}
    assert "not on CPU" in refusal(cpu_fsdp, monkeypatch)
    ppo_fsdp = {"kind": "ppo", "policy_model": "tiny", "peft": "none",
                "resources": {"devices": "cuda", "gpus": 2, "strategy": "fsdp"}}
    assert "use strategy ddp" in refusal(ppo_fsdp, monkeypatch)
    odd = {"kind": "ppo", "policy_model": "tiny", "ppo": {"batch_size": 6, "mini_batch_size": 3},
           "resources": {"devices": "cpu", "processes": 2}}
    assert "ppo.mini_batch_size (3) must be a multiple of the 2 processes" in refusal(odd, monkeypatch)
    # what runs: one process anywhere, DDP on CPU within the cores, FSDP for full fine-tuning on GPUs
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    for ok in ({**SFT, "resources": {"devices": "cpu", "processes": 2}},
               {**SFT, "peft": "none", "resources": {"devices": "cuda", "gpus": 4, "strategy": "fsdp"}},
               {"kind": "eval", "model": "tiny"}):
        check_resources(parse_spec(ok))


def test_submit_refuses_before_queueing(tiny_model, monkeypatch):
    from sqlalchemy import func, select

    from backend.db.tables import Job, Worker
    from backend.errors import StudioError

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    eight = parse_spec({**SFT, "dataset": "demo:dialogsum", "resources": {"devices": "cpu", "processes": 8}})
    with pytest.raises(StudioError, match="8 but this machine has 2 CPU"):
        submit(eight)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    with session_scope(write=True) as s:  # a registered worker's cores count, not the submitting machine's
        s.add(Worker(id="big:1", host="big", pid=1, cpu_count=4))
    with pytest.raises(StudioError, match="8 but the largest worker has 4 CPU"):
        submit(eight)
    with session_scope(write=True) as s:
        s.add(Worker(id="bigger:1", host="bigger", pid=1, cpu_count=16))
    assert submit(eight)


def test_each_rank_takes_an_equal_share_of_the_reward_batches():
    from backend.errors import StudioError
    from jobs.runners.reward import rank_share

    batches = list(range(7))
    assert rank_share(batches, 0, 2) == [0, 2, 4] and rank_share(batches, 1, 2) == [1, 3, 5]
    assert rank_share(batches, 0, 1) == batches
    with pytest.raises(StudioError, match="fewer than the 3 processes"):
        rank_share([0, 1], 0, 3)


def preference_file(path, n_prompts: int = 8):
    rows = [{"prompt": f"Customer message {i}: my booking {i}", "chosen": f"hello thanks booking {i}",
             "rejected": f"refund refund booking {i}"} for i in range(n_prompts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


TWO_RANKS = {"devices": "cpu", "processes": 2}
SMALL_TRAIN = {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-3, "warmup_ratio": 0.0, "max_length": 64,
               "logging_steps": 1}


def other_kind(kind: str, folder) -> dict:
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    if kind == "grpo":
        return {"kind": "grpo", "policy_model": "tiny", "max_steps": 2, "batch_size": 4, "num_generations": 2,
                "max_new_tokens": 6, "learning_rate": 1e-2, "lora": lora, "resources": TWO_RANKS}
    data = {"dataset": str(preference_file(folder / "prefs.jsonl")), "test_size": 0.25, "min_pairs": 4}
    return {"kind": kind, "base_model": "tiny", "data": data, "lora": lora, "train": SMALL_TRAIN,
            "resources": TWO_RANKS, **({"peft": "lora"} if kind == "reward" else {})}


@pytest.mark.parametrize("kind", ["reward", "dpo", "grpo"])
def test_other_training_kinds_run_on_two_ranks(kind, tiny_model, tmp_path):
    job_id = submit(parse_spec(other_kind(kind, tmp_path)))
    assert run_job(job_id) == 0, job_row(job_id).error
    job = job_row(job_id)
    assert job.status == "succeeded" and job.output_model_id is not None
    outcomes = rank_outcomes(job_id)
    assert {o["status"] for o in outcomes.values()} == {"succeeded"} and len(outcomes) == 2
    assert outcomes[0]["weights_digest"] == outcomes[1]["weights_digest"] is not None
    rows = metric_rows(job_id)
    for step in {m["step"] for m in rows}:  # (the Trainer's own logs at one step each carry an ``epoch``)
        keys = [m["key"] for m in rows if m["step"] == step and m["key"] != "epoch"]
        assert len(keys) == len(set(keys)), f"step {step} written more than once: {sorted(keys)}"
    assert any(m["key"] == "loss" for m in rows)


def test_whitening_with_sums_over_ranks_matches_whitening_the_whole_batch():
    import torch

    from jobs.rl.ppo import masked_whiten

    torch.manual_seed(0)
    values, mask = torch.randn(4, 5), (torch.rand(4, 5) > 0.3).float()
    shares = [(values[:2], mask[:2]), (values[2:], mask[2:])]  # two ranks' halves of one batch
    mean = (values * mask).sum().double() / mask.sum()
    # what the all-reduce returns to every rank: the whole batch's (Σ v, count), then Σ (v − mean)²
    replies = [torch.stack([(values * mask).sum(), mask.sum()]).double(),
               (((values - mean) ** 2) * mask).sum().double().reshape(1)]

    def all_reduce_sum(tensor):
        reply = replies[calls.pop(0)]
        assert reply.shape == tensor.shape
        return reply

    for shift_mean in (True, False):
        whole = masked_whiten(values, mask, shift_mean)
        parts = []
        for v, m in shares:
            calls = [0, 1]
            parts.append(masked_whiten(v, m, shift_mean, sum_across=all_reduce_sum))
        torch.testing.assert_close(torch.cat(parts), whole)
        assert not torch.allclose(torch.cat([masked_whiten(v, m, shift_mean) for v, m in shares]), whole)
