"""What the RLHF run page shows: PPO runs, their curves per step, sample completions, and the reward-hacking flag.

Reward hacking (the seeds' warning): the policy finds outputs the reward source scores highly but that no
longer read like the model — the reward climbs while the KL to the reference explodes. ``reward_hacking``
flags a run when, between the first and the last third of its steps, the mean score rose and the mean KL per
completion ended above twice the KL target (or above ``KL_ALARM_NATS`` when β is fixed and there is no target).
"""

import json
from statistics import mean
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.tables import Job
from backend.errors import StudioError

RLHF_KINDS = ("ppo",)
KL_ALARM_NATS = 10.0  # without a target: 10 nats per completion is far from the reference for any length


def ppo_runs(session: Session) -> list[dict[str, Any]]:
    """PPO jobs, newest first."""
    jobs = session.scalars(select(Job).where(Job.kind.in_(RLHF_KINDS)).order_by(Job.id.desc()))
    return [{"id": j.id, "name": j.name, "status": j.status, "created": j.created_at.strftime("%m-%d %H:%M")}
            for j in jobs]


def reward_hacking(steps: list[dict[str, float]], kl_target: float | None) -> dict[str, Any] | None:
    """The flag for rows of ``{"objective/scores": …, "objective/kl": …}`` in step order (pure); None when fine."""
    rows = [r for r in steps if "objective/scores" in r and "objective/kl" in r]
    if len(rows) < 3:
        return None
    third = max(1, len(rows) // 3)
    first, last = rows[:third], rows[-third:]
    rise = mean(r["objective/scores"] for r in last) - mean(r["objective/scores"] for r in first)
    kl_end = mean(r["objective/kl"] for r in last)
    limit = 2 * kl_target if kl_target else KL_ALARM_NATS
    if rise > 0 and kl_end > limit:
        return {"reward_rise": rise, "kl": kl_end, "limit": limit,
                "message": f"Possible reward hacking: the reward rose by {rise:+.3f} while the KL to the reference "
                           f"reached {kl_end:.1f} nats per completion (limit {limit:.1f}). Read the samples: are "
                           "they still sensible text? Raise kl_coef or lower kl_target."}
    return None


HELD_OUT = ("eval/reward", "eval/toxicity", "eval/kl")
HELD_OUT_NOTE = ("The PPO job logs each held-out evaluation's mean, spread and count, not the per-completion scores: "
                 "the intervals are a normal approximation from the spread over the held-out prompts (wider than a "
                 "bootstrap by prompt when a prompt is sampled several times), and the change since the first "
                 "evaluation is compared unpaired (wider than a paired test on the same prompts would be).")


HELD_OUT_PAIRED_NOTE = ("Intervals: 95 % bootstrap over the held-out prompts (a prompt's samples kept together); "
                        "the change since the first evaluation is paired on the same prompts and seeded draws, with "
                        "a sign-flip p-value.")


def held_out_paired(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``held_out``'s rows from per-completion scores (``eval_scores.jsonl``: step, prompt, reward, toxicity, kl):
    bootstrap intervals by prompt and paired differences against the first evaluation (pure)."""
    from backend.metrics import stats
    from services.eval_scores import lower_is_better

    by_step: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_step.setdefault(int(row["step"]), []).append(row)
    out, first = [], None
    for step, scored in sorted(by_step.items()):
        prompts = [r["prompt"] for r in scored]
        for metric in (k.removeprefix("eval/") for k in HELD_OUT):
            values = [r[metric] for r in scored]
            interval = stats.mean_interval(values, prompts)
            row = {"step": step, "metric": metric, "mean": interval.mean, "interval": interval.as_dict(),
                   "delta": None, "vs_first": None}
            if first is not None:
                diff = stats.paired_difference([r[metric] for r in first], values, [r["prompt"] for r in first],
                                               prompts)
                row["delta"] = diff.delta
                row["vs_first"] = {**diff.as_dict(), "verdict": stats.verdict(
                    diff, lower_is_better=lower_is_better(metric))}
            out.append(row)
        first = scored if first is None else first
    return out


def held_out(evals: list[dict[str, float]], samples_per_prompt: int = 1) -> list[dict[str, Any]]:
    """The held-out evaluations per step and score, with what the logged numbers allow (pure).

    One row per (step, score): ``step, metric`` (reward, toxicity, kl), ``mean``, ``interval`` (``stats.Interval``
    fields from ``stats.summary_interval``: n prompts, n_obs completions; None when the spread ``eval/<x>_std`` or
    the count ``eval/completions`` was not logged, e.g. for the KL), ``delta`` (since the first evaluation; None on
    it) and ``vs_first`` (``stats.unpaired_difference`` fields + ``verdict``; None where either side has no
    interval).
    """
    from backend.metrics import stats
    from services.eval_scores import lower_is_better

    rows, first = [], {}
    for ev in evals:
        for key in (k for k in HELD_OUT if k in ev):
            std, count = ev.get(f"{key}_std"), ev.get("eval/completions")
            interval = None
            if std is not None and count:
                interval = stats.summary_interval(ev[key], std, max(1, round(count / samples_per_prompt)), int(count))
            metric = key.removeprefix("eval/")
            row = {"step": ev["step"], "metric": metric, "mean": ev[key],
                   "interval": interval and interval.as_dict(), "delta": None, "vs_first": None}
            if key in first:
                start_mean, start = first[key]
                row["delta"] = ev[key] - start_mean
                if start is not None and interval is not None:
                    diff = stats.unpaired_difference(start, interval)
                    row["vs_first"] = {**diff.as_dict(),
                                       "verdict": stats.verdict(diff, lower_is_better=lower_is_better(metric))}
            else:
                first[key] = (ev[key], interval)
            rows.append(row)
    return rows


def run_view(session: Session, job_id: int) -> dict[str, Any]:
    """Everything the page draws for one PPO run: per-step curves, evaluations (``evals``: the logged ``eval/``
    values per step; ``held_out``: the same with intervals and the change since the first evaluation, see
    ``held_out``, and ``held_out_note`` saying how they were made), samples, flag and summary."""
    from jobs import artifacts, queue

    job = session.get(Job, job_id)
    if job is None or job.kind not in RLHF_KINDS:
        raise StudioError(f"There is no PPO job {job_id}.")
    by_step: dict[int, dict[str, float]] = {}
    for m in queue.job_metrics(session, job_id):
        by_step.setdefault(m["step"], {})[m["key"]] = m["value"]
    steps = [{"step": s, **v} for s, v in sorted(by_step.items()) if s > 0 and "objective/scores" in v]
    evals = [{"step": s, **{k: v for k, v in row.items() if k.startswith("eval/")}}
             for s, row in sorted(by_step.items()) if "eval/reward" in row]
    ppo = (job.spec or {}).get("ppo", {})
    kl_target = ppo.get("kl_target") if ppo.get("adaptive_kl", True) else None
    folder = artifacts.job_dir(job_id)
    samples_file, summary_file = folder / "samples.jsonl", folder / "ppo_summary.json"
    samples = [json.loads(line) for line in samples_file.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if samples_file.is_file() else []
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else None
    scores_file = folder / artifacts.EVAL_SCORES
    if scores_file.is_file():  # per-completion scores: paired comparisons on the same prompts
        rows = [json.loads(line) for line in scores_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        held, note = held_out_paired(rows), HELD_OUT_PAIRED_NOTE
    else:  # jobs from before the scores were kept: what the logged mean, spread and count allow
        held, note = held_out(evals, int((job.spec or {}).get("eval_samples") or 1)), HELD_OUT_NOTE
    return {"job": {"id": job.id, "name": job.name, "status": job.status, "error": job.error},
            "steps": steps, "evals": evals, "held_out_note": note, "held_out": held, "samples": samples,
            "summary": summary, "kl_target": kl_target, "flag": reward_hacking(steps, kl_target)}

