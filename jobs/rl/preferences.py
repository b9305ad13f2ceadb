"""Preference pairs for the reward and DPO jobs, from a labeling campaign or an uploaded file.

Rows are TRL's preference format — ``prompt``, ``chosen``, ``rejected`` and ``margin`` (0.0 unless the data
has one) — split by prompt, so the pairs of one ranking stay on one side. For a campaign the human–human
agreement is returned too: it is the ceiling a reward model's held-out pairwise accuracy can be read against.
No heavy imports here: the queue's checks use it before a job is queued.
"""

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from backend.errors import StudioError


@dataclass
class PreferencePairs:
    train: list[dict]
    test: list[dict]
    source: str  # "campaign <name>" or the file's reference
    agreement: dict[str, Any] = field(default_factory=dict)  # human–human agreement of the campaign


def _campaign_ref(value: str) -> int | str:
    return int(value) if value.strip().isdigit() else value


def human_agreement(session: Session, campaign: int | str) -> dict[str, Any]:
    """Pooled pairwise agreement between annotators who judged the same items, and Krippendorff's α."""
    from labeling.quality import quality_report

    report = quality_report(session, campaign)
    pairs = [p for p in report["annotator_pairs"] if p["agreement"] is not None]
    items = sum(p["items"] for p in pairs)
    pooled = sum(p["agreement"] * p["items"] for p in pairs) / items if items else None
    return {"human_pairwise_agreement": pooled, "krippendorff_alpha": report["alpha"],
            "items_shared": report["items_shared"]}


def load_pairs(session: Session, data) -> PreferencePairs:
    """The pairs a spec's ``data`` (``PreferenceDataArgs``) names; raises ``StudioError`` with the fix."""
    from labeling.export import campaign_rows, split_by_prompt

    if data.campaign is None and data.dataset is None:
        raise StudioError("Preference data: give a labeling campaign (data.campaign) or a preference file "
                          "(data.dataset) with prompt, chosen and rejected columns.")
    if data.campaign is not None:
        from labeling.campaigns import find_campaign

        campaign = find_campaign(session, _campaign_ref(data.campaign))
        rows, _ = campaign_rows(session, campaign.id, strategy=data.strategy, consensus=data.consensus,
                                margin=True)
        train, test = split_by_prompt(rows, data.test_size, data.seed)
        result = PreferencePairs(train, test, f"campaign {campaign.name}", human_agreement(session, campaign.id))
    else:
        result = _file_pairs(data)
    if not data.use_margin:
        for row in result.train + result.test:
            row["margin"] = 0.0
    return result


def _file_pairs(data) -> PreferencePairs:
    from backend.data.datasets_io import check_dataset_ref, load_rows
    from labeling.export import split_by_prompt

    required = ["prompt", "chosen", "rejected"]
    splits = check_dataset_ref(data.dataset)
    if "train" not in splits:
        raise StudioError(f"{data.dataset} has no train split (it has: {', '.join(splits)}).")
    rows = load_rows(data.dataset, "train", required)
    if data.use_margin and "margin" not in rows[0]:
        raise StudioError(f"{data.dataset} has no margin column: add one, or set data.use_margin to false.")
    given_test = load_rows(data.dataset, "test", required) if "test" in splits else None
    clean = [_row(r, i) for i, r in enumerate(rows)]
    if given_test is not None:
        return PreferencePairs(clean, [_row(r, i) for i, r in enumerate(given_test)], data.dataset)
    train, test = split_by_prompt(clean, data.test_size, data.seed)
    return PreferencePairs(train, test, data.dataset)


def _row(row: dict, index: int) -> dict:
    if row["chosen"] == row["rejected"]:
        raise StudioError(f"Preference row {index + 1}: chosen and rejected are the same text, which teaches "
                          "nothing; remove it.")
    try:
        margin = float(row.get("margin") or 0.0)
    except (TypeError, ValueError):
        raise StudioError(f"Preference row {index + 1}: margin {row.get('margin')!r} is not a number.") from None
    return {"prompt": str(row["prompt"]), "chosen": str(row["chosen"]), "rejected": str(row["rejected"]),
            "margin": margin}


def check_enough(pairs: PreferencePairs, min_pairs: int) -> None:
    if len(pairs.train) < min_pairs:
        raise StudioError(f"{pairs.source} gives only {len(pairs.train)} training pair(s), fewer than data.min_pairs "
                          f"({min_pairs}): rank more items (each ranking of K completions gives up to C(K,2) pairs), "
                          "add rows to the file, or lower min_pairs.")


def ranking_groups(rows: list[dict]) -> list[list[int]]:
    """Indices of the rows grouped by prompt: the pairs one ranking of K completions produced (C(K,2) of them)."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row["prompt"], []).append(i)
    return list(groups.values())


def open_preference_job(ctx, spec) -> tuple[Any, PreferencePairs]:
    """The starting model and the checked preference pairs of a reward or DPO job, logged as step-0 metrics."""
    from backend.db.engine import session_scope
    from backend.models.store import resolve

    with session_scope(write=True) as s:
        start = resolve(s, spec.base_model)
        data = load_pairs(s, spec.data)
    check_enough(data, spec.data.min_pairs)
    print(f"pairs: {len(data.train)} train, {len(data.test)} held out ({data.source})", flush=True)
    ctx.log_metrics(0, {"data/train_pairs": len(data.train), "data/test_pairs": len(data.test),
                        "human_agreement": data.agreement.get("human_pairwise_agreement")})
    return start, data
