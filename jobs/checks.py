"""Checks made before an SFT, evaluation or completion-generation job is queued (RLHF kinds: ``jobs.rl.checks``).

Cheap checks only: the model resolves, the dataset exists (a hub dataset is reachable) and has the split the job
reads, templates use a data field, a resumed job has a usable checkpoint, early stopping has validation data, an
evaluated adapter fits its base (shapes only, no weights), extra metrics are allow-listed names (nothing is loaded)
and the toxicity model loads. Rows are not read here: column and row problems fail the job with a readable error (and
``services.training.preview_examples`` shows them before launch).
"""

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backend.errors import StudioError
from jobs.artifacts import resume_checkpoint
from jobs.rl.checks import check_reward_model
from jobs.specs import EvalSpec, SFTSpec


def _model_and_splits(session: Session, model_ref: str, dataset: str, split: str):
    from backend.models.store import resolve
    from jobs.data import dataset_splits

    model = resolve(session, model_ref)
    splits = dataset_splits(dataset)
    if split not in splits:
        raise StudioError(f"Dataset '{dataset}' has no '{split}' split (it has: {', '.join(splits) or 'none'}).")
    return model, splits


def check_sft(session: Session, spec: SFTSpec) -> None:
    from jobs.data import check_templates

    model, splits = _model_and_splits(session, spec.base_model, spec.dataset, "train")
    check_templates(spec)
    if model.kind == "adapter":
        raise StudioError(f"'{model.name}' is an adapter: start SFT from a base or full model.")
    if spec.train.early_stopping_patience and not (
            spec.max_eval_examples and ("validation" in splits or spec.validation_share)):
        raise StudioError("Early stopping needs validation data: the dataset has no validation split, so set "
                          "validation_share above 0 (and max_eval_examples above 0).")
    if spec.resume_from_job is not None:
        resume_checkpoint(session, spec)


def check_eval(session: Session, spec: EvalSpec) -> None:
    from backend.data.rlhf_prompts import ensure_demo_prompts
    from jobs.data import check_templates

    ensure_demo_prompts(spec.dataset)
    model, _ = _model_and_splits(session, spec.model, spec.dataset, spec.split)
    if spec.reward_model is not None:
        check_reward_model(session, spec.reward_model)
    check_templates(spec)
    if model.kind == "adapter":
        from jobs.modeling import check_adapter_fits

        if not model.base_path:
            raise StudioError(f"Adapter '{model.name}' has no registered base model to load it onto.")
        check_adapter_fits(model.path, model.base_path, model.name, Path(model.base_path).name)
    _check_eval_scorers(spec)


def _check_eval_scorers(spec: EvalSpec) -> None:
    from backend.metrics.extra import check_extra_metric

    for name in spec.extra_metrics:  # allow-listed names only: nothing is imported or run here
        check_extra_metric(name)
    ref = spec.toxicity_model
    if ref is None:
        return
    folder = Path(ref).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise StudioError(f"toxicity_model {ref} has no config.json: give a transformers classifier folder.")
        return
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(ref)
    except Exception as exc:  # noqa: BLE001 - offline, unknown id: the user's fix is the same
        raise StudioError(f"toxicity_model '{ref}' is neither a local folder nor available from the hub "
                          f"({str(exc).splitlines()[0][:160]}). Download it and give its folder, or leave "
                          "toxicity_model empty to use the packaged profanity classifier.") from None


def check_label_completions(session: Session, spec: Any) -> None:
    from labeling.campaigns import find_campaign
    from labeling.generation import items_missing_completions

    campaign = find_campaign(session, spec.campaign_id)
    if campaign.status == "archived":
        raise StudioError(f"Campaign '{campaign.name}' is archived: unarchive it to generate completions.")
    if not items_missing_completions(session, campaign):
        raise StudioError(f"Every item of campaign '{campaign.name}' already has its {campaign.k} completions "
                          "(or the ones imported with its rankings).")
