"""Close the loop: turn a playground run or an evaluation run into a labeling campaign.

``send_run_to_campaign`` makes a one-item campaign from a saved playground/compare run, copying the run's
completions in so annotators can rank at once.

An evaluation run holds the prompts a model answered (``EvalResult.input``: the rendered prompt, before the chat
template). ``campaign_from_eval_run`` makes a campaign over those prompts whose K completions come from that model
— alone, or against another evaluated model (e.g. the PPO policy vs its base) — and queues the
``label_completions`` job that generates them (``completion_jobs.launch_campaign``, as the Campaigns page does).
Annotators' rankings then train the next reward model or DPO round.
"""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.completions import copy_completion
from backend.db.lookup import get_or_raise
from backend.db.tables import CampaignItem, Completion, EvalResult, EvalRun, Job, ModelRecord
from backend.errors import StudioError
from labeling.campaigns import DEFAULT_SAMPLING, campaign_summary, create_campaign
from services import runs
from services.completion_jobs import launch_campaign

MAX_CAMPAIGN_K = 9  # labeling campaigns rank 2–9 completions per prompt


def run_source(session: Session, run: EvalRun) -> dict[str, Any]:
    """A campaign source for the model an evaluation run scored: the model reference the job used (a registered
    name, else the run's model name), its chat format, and sampling settings with the run's completion length
    (K completions of one prompt need sampling; evaluations usually decode greedily)."""
    job = session.get(Job, run.job_id) if run.job_id else None
    spec = (job.spec or {}) if job is not None else {}
    record = session.get(ModelRecord, run.model_id) if run.model_id else None
    model = record.name if record is not None else spec.get("model") or run.model_name
    max_new = int((run.decoding or {}).get("max_new_tokens") or DEFAULT_SAMPLING.max_new_tokens)
    decoding = DEFAULT_SAMPLING.model_copy(update={"max_new_tokens": max_new})
    return {"model": model, "decoding": decoding.model_dump(exclude={"num_return_sequences"}),
            "label": f"{model} (eval #{run.id})", "chat": bool(spec.get("chat_format", True))}


def run_prompts(session: Session, run_id: int) -> list[str]:
    """The prompts of an evaluation run, in example order (what the model was asked, without the chat template)."""
    get_or_raise(session, EvalRun, run_id, "evaluation run")
    return list(session.scalars(select(EvalResult.input).where(EvalResult.eval_run_id == run_id)
                                .order_by(EvalResult.idx)))


def campaign_from_eval_run(session: Session, admin_id: int, run_id: int, name: str, *, k: int = 2,
                           versus_run_id: int | None = None, criterion: str = "harmlessness", overlap: int = 1,
                           batch_size: int = 8, submission_token: str | None = None) -> dict[str, Any]:
    """Create a labeling campaign over an evaluation run's prompts and queue its completion job.

    Args:
        admin_id: the signed-in admin (campaigns are an admin action).
        run_id: the evaluation run whose model and prompts are used.
        name: the new campaign's name (unique).
        k: completions per prompt (2–9).
        versus_run_id: another evaluation run whose model is a second source (completions alternate between the
            two models); None = this model makes all K completions.
        criterion, overlap, batch_size: as on the Campaigns page.
        submission_token: one per button click: a double click returns what the first created.

    Returns:
        The campaign summary (``campaigns.campaign_summary``) plus ``job_id``.

    Raises:
        StudioError: unknown run, a run without prompts, the same model twice, a duplicate campaign name, K out of
            range, … — in the caller's transaction, so nothing is left half-written.
    """
    run = get_or_raise(session, EvalRun, run_id, "evaluation run")
    prompts = run_prompts(session, run_id)
    if not prompts:
        raise StudioError(f"Evaluation run #{run_id} has no prompts to label.")
    sources = [run_source(session, run)]
    if versus_run_id is not None:
        other = run_source(session, get_or_raise(session, EvalRun, versus_run_id, "evaluation run"))
        if other["model"] == sources[0]["model"]:
            raise StudioError(f"Runs #{run_id} and #{versus_run_id} evaluated the same model "
                              f"'{other['model']}': pick another model to compare with, or label this one alone.")
        sources.append(other)
    return launch_campaign(session, admin_id, name, prompts=prompts, source=f"eval:{run_id}", k=k,
                           criterion=criterion, overlap=overlap, sources=sources, batch_size=batch_size,
                           submission_token=submission_token, parent_models=[src["model"] for src in sources])


def send_run_to_campaign(session: Session, run_id: int, name: str, *, columns: list[str] | None = None,
                         criterion: str = "helpfulness", overlap: int = 1) -> dict[str, Any]:
    """Make a labeling campaign from a saved run: its prompt is one item, its chosen variants are the sources.

    The run's completions become the item's K completions (copied, so the run stays as it was and one run
    can feed several campaigns): annotators can rank them at once, nothing is generated again. Each chosen
    variant gives the same number of completions, so the campaign's round-robin of sources holds.

    Args:
        session: a write session.
        run_id: a playground or compare run.
        name: the new campaign's name.
        columns: the labels of the variants to send (None = all of them).
        criterion, overlap: as in ``labeling.campaigns.create_campaign``.

    Returns:
        The campaign summary (``labeling.campaigns.campaign_summary``).
    """
    run = runs.get_run(session, run_id)
    by_label = {c["label"]: (c, v) for c, v in zip(run["columns"], run["variants"], strict=False)}
    chosen = list(by_label) if columns is None else list(dict.fromkeys(columns))
    unknown = [c for c in chosen if c not in by_label]
    if unknown:
        raise StudioError(f"Run {run_id} has no variant '{unknown[0]}' (it has: {', '.join(by_label)}).")
    picked = [by_label[c] for c in chosen if by_label[c][0]["completions"]]
    if not picked:
        raise StudioError("Choose at least one variant of the run to send.")
    per_source = min(min(len(c["completions"]) for c, _ in picked), MAX_CAMPAIGN_K // len(picked))
    k = per_source * len(picked)
    if k < 2:
        raise StudioError("Annotators rank completions against each other: choose at least two variants, or one "
                          "that made several completions.")
    texts = {c.get("text") for c, _ in picked}
    prompt = texts.pop() if len(texts) == 1 and None not in texts else run["input"]
    sources = [{"model": c["model"], "decoding": c["decoding"], "label": c["label"],
                "chat": bool((v or {}).get("prompt", {}).get("chat", True))} for c, v in picked]
    campaign = create_campaign(session, name, [prompt], k=k, criterion=criterion, overlap=overlap,
                               source="playground", sources=sources)
    item = session.scalars(select(CampaignItem).where(CampaignItem.campaign_id == campaign.id)).one()
    for column, _ in picked:
        for done in column["completions"][:per_source]:
            session.add(copy_completion(session.get(Completion, done["id"]), prompt_id=item.prompt_id, item_id=item.id,
                                        source_label=column["label"][:300]))
    session.flush()
    return {**campaign_summary(session, campaign.id), "run_id": run_id, "completions_per_source": per_source}
