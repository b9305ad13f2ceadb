"""Evaluation: generate on a dataset split (batched) and score the outputs.

Dataset: rows with the template's fields and, when ``target_field`` is set, that column (the reference). With no
``target_field`` (held-out prompts such as ``demo:provocative`` with the template ``{prompt}``) ROUGE, BLEU and
perplexity are skipped — not logged, not zero — and toxicity, length and the reward score are still computed.
Model: a base or full model, a LoRA adapter (merged onto its base by the loader) or a prompt-tuning
adapter (its base wrapped by peft: a soft prompt cannot be merged).
Reward: with ``reward_model``, a reward job's model scores each prompt + completion in the format it was trained
on (``jobs.rl.rewards.RewardModelReward``, the scorer PPO uses).
Logged metric keys: ``eval/rouge1``, ``eval/rouge2``, ``eval/rougeL``, ``eval/rougeLsum``, ``eval/bleu`` (with
references), ``eval/toxicity``, ``eval/toxicity_std``, ``eval/length_words``, ``eval/repetition`` (share of repeated
word 3-grams), ``eval/refusal`` (share of completions that decline) and ``eval/apology`` (share that open with an
apology; all three ``backend.metrics.hacking``),
``eval/reward`` and ``eval/reward_std`` (with a reward model), ``eval/perplexity`` (references given the prompts;
when ``perplexity`` is on and there are references), ``eval/<extra metric>`` for each of ``extra_metrics``,
``eval/progress``.
Output: an ``eval_runs`` row with corpus metrics and one ``eval_results`` row per completion (ROUGE, BLEU,
toxicity, length, repetition, refusal, apology, reward; ``reference`` is None without references): ``samples_per_example``
rows per example, next to each other, and ``n_examples`` counts completions.
"""

import functools
from pathlib import Path
from typing import Any

from backend.data.rlhf_prompts import ensure_demo_prompts
from backend.db.engine import session_scope
from backend.db.tables import EvalResult, EvalRun
from backend.errors import StudioError
from backend.generation.engine import format_prompt, generate
from backend.metrics.deltas import mean_std
from backend.metrics.extra import compute_extra_metric
from backend.metrics.hacking import HACKING_SIGNS
from backend.metrics.scorers import neural_toxicity_scores, perplexity, score_texts
from backend.models.loader import load_model
from backend.models.store import resolve
from backend.prompts.templates import render, resolve_template, template_fields
from jobs import queue
from jobs.context import JobContext
from jobs.data import read_rows
from jobs.rl.checks import check_reward_model
from jobs.specs import EvalSpec

METRIC_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "toxicity", "length_words")


def _load(resolved, precision: str):
    from jobs.modeling import check_adapter_fits, is_prompt_learning, load_prompt_tuned

    if resolved.kind == "adapter" and resolved.base_path:
        check_adapter_fits(resolved.path, resolved.base_path, resolved.name, Path(resolved.base_path).name)
        if is_prompt_learning(resolved.path):
            return load_prompt_tuned(resolved, precision)
    return load_model(resolved, precision=precision)


def _extra_metrics(spec: EvalSpec, predictions: list[str], references: list[str]) -> dict[str, float]:
    """Scores of the allow-listed extra metrics (``backend.metrics.extra``), keyed by metric name."""
    out: dict[str, float] = {}
    for ref in spec.extra_metrics:
        for name, value in compute_extra_metric(ref, predictions, references).items():
            out[f"extra.{name}" if name in METRIC_KEYS or name == "perplexity" else name] = value
    return out


def _reward_scores(reward_path: str, prompts: list[str], completions: list[str], device: str) -> list[float]:
    """Each completion's reward-model score (the prompt is the rendered input, before any chat template)."""
    from jobs.rl.rewards import RewardModelReward

    return RewardModelReward(reward_path, device)(prompts, completions)


def run(ctx: JobContext) -> None:
    spec: EvalSpec = ctx.spec
    template = resolve_template(spec.template)
    target = spec.target_field
    ensure_demo_prompts(spec.dataset)
    try:
        rows = read_rows(spec.dataset, spec.split, template_fields(template) + ([target] if target else []),
                         spec.max_examples)
    except StudioError as exc:
        if target and target in str(exc):
            raise StudioError(f"{exc} target_field '{target}' is the reference column: fix its name, or leave it "
                              "empty when the data has no references.") from None
        raise
    n = spec.samples_per_example  # each example n times in a row; every completion is scored on its own
    rows = [row for row in rows for _ in range(n)]
    with session_scope(write=True) as s:
        resolved = resolve(s, spec.model)
        scorer = check_reward_model(s, spec.reward_model) if spec.reward_model else None  # it may be gone
    ctx.raise_if_cancelled()
    loaded = _load(resolved, spec.precision)
    inputs = [render(template, row) for row in rows]
    prompts = [format_prompt(loaded.tokenizer, text, spec.chat_format) for text in inputs]
    predictions: list[str] = []
    for start in range(0, len(prompts), spec.batch_size):
        ctx.raise_if_cancelled()
        batch = prompts[start : start + spec.batch_size]
        predictions += [r[0].text.strip() for r in generate(loaded, batch, spec.decoding, batch_size=spec.batch_size)]
        ctx.log_metrics(len(predictions), {"eval/progress": len(predictions) / len(prompts)})
        print(f"generated {len(predictions)}/{len(prompts)}", flush=True)
    references = [str(row[target]) for row in rows] if target else None
    toxicity: Any = True
    if spec.toxicity_model:
        toxicity = functools.partial(neural_toxicity_scores, model_ref=spec.toxicity_model,
                                     toxic_label=spec.toxic_label, batch_size=spec.batch_size)
    scores = score_texts(predictions, references, toxicity=toxicity)
    per_example = [{k: ex[k] for k in METRIC_KEYS if ex.get(k) is not None} for ex in scores["per_example"]]
    for ex, text in zip(per_example, predictions, strict=True):  # reward-hacking signs, next to the reward
        ex.update({name: sign(text) for name, sign in HACKING_SIGNS.items()})
    corpus = {k: scores[k] for k in METRIC_KEYS if scores.get(k) is not None}
    corpus.update({k: sum(ex[k] for ex in per_example) / len(per_example) for k in HACKING_SIGNS})
    if "toxicity" in corpus:
        corpus["toxicity_std"] = mean_std([ex["toxicity"] for ex in per_example])[1]
    if spec.perplexity and references is not None:
        ctx.raise_if_cancelled()
        corpus["perplexity"] = perplexity(loaded.model, loaded.tokenizer, references[::n], batch_size=spec.batch_size,
                                          max_length=loaded.context_window, prompts=prompts[::n])
    if references is not None:
        corpus.update(_extra_metrics(spec, predictions, references))
    if scorer is not None:
        ctx.raise_if_cancelled()
        device = loaded.device
        del loaded  # the policy is done: free its memory before loading the reward model
        rewards = _reward_scores(scorer.path, inputs, predictions, device)
        for ex, value in zip(per_example, rewards, strict=True):
            ex["reward"] = value
        corpus["reward"], corpus["reward_std"] = mean_std(rewards)
        print(f"reward model {scorer.name}: mean {corpus['reward']:.4f}", flush=True)
    ctx.log_metrics(len(predictions), {f"eval/{k}": v for k, v in corpus.items()})
    with session_scope(write=True) as s:
        queue.require_running(s, ctx.job_id)  # reaped or ended meanwhile: write no results
        run_row = EvalRun(job_id=ctx.job_id, model_id=resolved.id, model_name=resolved.name, dataset=spec.dataset,
                          split=spec.split, template=template, decoding=spec.decoding.model_dump(),
                          n_examples=len(rows), metrics=corpus)
        s.add(run_row)
        s.flush()
        s.add_all(EvalResult(eval_run_id=run_row.id, idx=i, input=inputs[i],
                             reference=references[i] if references is not None else None,
                             prediction=predictions[i], scores=ex) for i, ex in enumerate(per_example))
    print("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in corpus.items()), flush=True)
