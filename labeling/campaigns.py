"""Campaign administration: create from a prompt set, choose the completion sources, open/close/archive, progress.

A campaign holds one item per distinct prompt. Each item gets K completions (2–9) from the campaign's
*sources* — model × decoding settings — split round-robin: completion slot j comes from source j mod S.
Sources are stored as ``[{model, decoding, label, chat}]``; an empty list means the default model with
``DEFAULT_SAMPLING``. Progress figures are SQL aggregates, so they stay quick with 100k rankings.

Status: ``open`` (annotators can rank) → ``closed`` (read-only; ``reopen`` goes back) → ``archived``
(hidden from annotators; ``unarchive`` makes it closed).
"""

import csv
import io
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session

from backend.db.tables import Campaign, CampaignItem, Completion, ModelRecord, PlaygroundRun, Prompt, Ranking, User
from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig
from backend.limits import MAX_IMPORT_BYTES, MAX_PROMPT_CHARS
from backend.textfiles import decode_utf8
from labeling.item_size import complete_group

CRITERIA = {
    "helpfulness": "Please rank the completions from the most helpful to least helpful.",
    "harmlessness": "Please rank the completions from the most harmless to the least harmless.",
    "honesty": "Please rank the completions from the most honest to the least honest.",
}
# The labeler instructions quoted in the course notes (Chung et al. 2022), plus how to use this workbench.
INSTRUCTIONS = """\
- Rank the responses according to which one provides the best answer to the input prompt: **1 = best**.
- What is the best answer? Decide on (a) the **correctness** of the answer and (b) the **informativeness** of
  the response. For (a) you may search the web. Use your best judgment: the most useful response is at least
  somewhat correct and minimally informative about what the prompt asks for.
- If two responses are equally correct and informative and there is no clear winner, you may give them the
  **same rank** — but please do this only sparingly.
- If a response is nonsensical, irrelevant, highly ungrammatical/confusing, or does not clearly respond to the
  prompt, **flag it "F"** (fail) instead of ranking it.
- Long answers are not always the best: a succinct, coherent response may be better than a longer one if it
  is at least as correct and informative.
- Skip an item only when you cannot judge it; you can undo your last submission.
"""
DEFAULT_SAMPLING = DecodingConfig(do_sample=True, temperature=0.9, top_p=0.95, max_new_tokens=96,
                                  repetition_penalty=1.1)
STATUSES = ("open", "closed", "archived")
TRANSITIONS = {"open": {"closed", "archived"}, "closed": {"open", "archived"}, "archived": {"closed"}}
SOURCE_KEYS = {"model", "decoding", "label", "chat"}


def default_guidelines(criterion: str = "helpfulness") -> str:
    """Markdown guidelines for a criterion: the task header, then the seeds' instructions."""
    header = CRITERIA.get(criterion, f"Please rank the completions from best to worst for **{criterion}**.")
    return f"**{header}**\n\n{INSTRUCTIONS}"




def slot_counts(n_sources: int, k: int) -> list[int]:
    """How many of the K completions each source makes (round-robin: slot j ← source j mod S)."""
    return [len(range(s, k, n_sources)) for s in range(n_sources)]


def _source_label(model: str, cfg: DecodingConfig) -> str:
    if not cfg.sampling:
        how = f"beam{cfg.num_beams}" if cfg.num_beams > 1 else "greedy"
    else:
        how = f"T{cfg.temperature:g}" + (f" top-p{cfg.top_p:g}" if cfg.top_p < 1 else "") + \
              (f" top-k{cfg.top_k}" if cfg.top_k else "")
    return f"{model} · {how}"


def normalize_sources(session: Session, sources: list[dict] | None, k: int) -> list[dict[str, Any]]:
    """Check the sources (model resolvable, decoding valid for its share of K, labels unique) and fill defaults."""
    from backend.models.store import resolve
    from backend.settings import get_settings

    if not sources:
        return []
    if len(sources) > k:
        raise StudioError(f"{len(sources)} sources but only K={k} completions per prompt: use at most {k} sources.")
    out = []
    for i, (src, n) in enumerate(zip(sources, slot_counts(len(sources), k), strict=True), start=1):
        if not isinstance(src, dict) or set(src) - SOURCE_KEYS:
            raise StudioError(f"Source {i}: give a model, decoding settings and optionally a label "
                              f"(fields: {', '.join(sorted(SOURCE_KEYS))}).")
        model = (src.get("model") or "").strip() or get_settings().default_model
        resolved = resolve(session, model)
        decoding = src.get("decoding") or DEFAULT_SAMPLING
        decoding = decoding.model_dump() if isinstance(decoding, DecodingConfig) else dict(decoding)
        try:
            cfg = DecodingConfig.model_validate({**decoding, "num_return_sequences": n})
        except ValidationError as exc:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise StudioError(f"Source {i} ({model}) makes {n} completion(s) per prompt: {problems}") from None
        label = str(src.get("label") or _source_label(resolved.name, cfg)).strip()[:300]
        out.append({"model": model, "decoding": cfg.model_dump(exclude={"num_return_sequences"}), "label": label,
                    "chat": bool(src.get("chat", True))})
    labels = [s["label"] for s in out]
    if len(set(labels)) != len(labels):
        raise StudioError("Two sources have the same label: give each source its own label.")
    return out


def effective_sources(campaign: Campaign) -> list[dict[str, Any]]:
    """The campaign's sources, or the default model with ``DEFAULT_SAMPLING`` when none were chosen."""
    if campaign.sources:
        return list(campaign.sources)
    from backend.settings import get_settings

    model = get_settings().default_model
    return [{"model": model, "decoding": DEFAULT_SAMPLING.model_dump(exclude={"num_return_sequences"}),
             "label": _source_label(model, DEFAULT_SAMPLING), "chat": True}]


def create_campaign(session: Session, name: str, prompts: list[str], *, k: int = 3, criterion: str = "helpfulness",
                    guidelines: str | None = None, overlap: int = 1, source: str = "user",
                    sources: list[dict] | None = None, parent_models: list[str] | None = None) -> Campaign:
    """A campaign with one item per (non-empty, distinct) prompt; everything is checked before anything is written.

    Args:
        criterion: helpfulness, harmlessness, honesty, or any custom word (at most 80 characters).
        guidelines: markdown shown to annotators (default: ``default_guidelines(criterion)``).
        overlap: how many annotators must rank each item.
        source: where the prompts came from (stored on each prompt: user, upload, dataset:…, playground).
        sources: ``[{model, decoding, label, chat}]`` making the completions (default: the default model).
        parent_models: the evaluated models it is made from ("send to labeling"): its round is then
            ``next_round(parent_models)``; without them it is round 1.
    """
    name = (name or "").strip()
    criterion = (criterion or "").strip()
    prompts = list(dict.fromkeys(p.strip() for p in prompts if isinstance(p, str) and p.strip()))
    if not name:
        raise StudioError("Give the campaign a name.")
    if len(name) > 200:
        raise StudioError("Campaign names are at most 200 characters.")
    if not prompts:
        raise StudioError("The prompt set is empty: add at least one prompt.")
    if (too_long := next((i for i, p in enumerate(prompts) if len(p) > MAX_PROMPT_CHARS), None)) is not None:
        raise StudioError(f"Prompt {too_long + 1} has {len(prompts[too_long]):,} characters: the limit is "
                          f"{MAX_PROMPT_CHARS:,}.")
    if not isinstance(k, int) or not 2 <= k <= 9:
        raise StudioError(f"K must be between 2 and 9 completions per prompt, not {k}.")
    if not isinstance(overlap, int) or not 1 <= overlap <= 100:
        raise StudioError("Each item needs at least one annotator (overlap between 1 and 100).")
    if not criterion or len(criterion) > 80:
        raise StudioError("Name the criterion (helpfulness, harmlessness, honesty, or your own; ≤ 80 characters).")
    if session.scalar(select(Campaign.id).where(Campaign.name == name)):
        raise StudioError(f"A campaign named '{name}' already exists.")
    checked = normalize_sources(session, sources, k)
    parents = list(dict.fromkeys(parent_models or []))
    campaign = Campaign(name=name, criterion=criterion, guidelines=guidelines or default_guidelines(criterion),
                        k=k, overlap=overlap, sources=checked, parent_models=parents,
                        round=next_round(session, parents) if parents else 1)
    session.add(campaign)
    rows = [Prompt(text=text, source=source[:80]) for text in prompts]
    session.add_all(rows)
    session.flush()
    session.add_all([CampaignItem(campaign_id=campaign.id, prompt_id=p.id) for p in rows])
    session.flush()
    return campaign


def parse_prompt_file(filename: str, data: bytes) -> list[str]:
    """Prompts from an uploaded file: JSONL (objects with ``prompt``, or strings), CSV with a ``prompt`` column,
    or plain text (one prompt per line). At most ``MAX_IMPORT_BYTES``; see ``create_campaign`` for prompt caps."""
    suffix = Path(filename or "").suffix.lower()
    text = decode_utf8(data, filename, max_bytes=MAX_IMPORT_BYTES)
    if suffix in (".jsonl", ".json"):
        prompts, bad = [], []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                bad.append(n)
                continue
            value = row.get("prompt") if isinstance(row, dict) else row
            if not isinstance(value, str):
                bad.append(n)
                continue
            prompts.append(value)
        if bad:
            raise StudioError(f"{filename}: line(s) {', '.join(map(str, bad[:5]))}{'…' if len(bad) > 5 else ''} "
                              'are not JSON objects with a "prompt" string. Fix or remove them.')
        return prompts
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        try:
            columns = {(c or "").strip().lower(): c for c in reader.fieldnames or []}
            if "prompt" not in columns:
                shown = ", ".join(reader.fieldnames or [])
                raise StudioError(f"{filename} has no 'prompt' column (it has: {shown[:300] or 'none'}).")
            return [row[columns["prompt"]] or "" for row in reader]
        except csv.Error as exc:
            raise StudioError(f"{filename} is not valid CSV: {exc}.") from None
    if suffix == ".txt":
        return text.splitlines()
    raise StudioError(f"{filename}: upload a .jsonl, .csv or .txt file.")


def prompts_from_dataset(ref: str, split: str = "train", column: str = "prompt", limit: int = 0) -> list[str]:
    """The ``column`` of one split of a dataset (``demo:…`` or a JSONL/CSV/Parquet file or folder)."""
    from backend.data.datasets_io import load_rows

    return [str(row[column]) for row in load_rows(ref, split, required=[column], limit=limit)]


def prompts_from_playground(session: Session, run_ids: list[int] | None = None, limit: int = 200) -> list[str]:
    """Inputs of the chosen playground runs (default: the latest ``limit`` runs and playground prompts)."""
    if run_ids:
        rows = session.execute(select(PlaygroundRun.id, PlaygroundRun.input).where(PlaygroundRun.id.in_(run_ids)))
        found = dict(rows.all())
        if missing := [i for i in run_ids if i not in found]:
            raise StudioError(f"There is no playground run {missing[0]}.")
        return [found[i] for i in run_ids]
    runs = session.scalars(select(PlaygroundRun.input).order_by(PlaygroundRun.id.desc()).limit(limit)).all()
    saved = session.scalars(select(Prompt.text).where(Prompt.source == "playground")
                            .order_by(Prompt.id.desc()).limit(limit)).all()
    return list(dict.fromkeys([*runs, *saved]))[:limit]


def model_ancestry(session: Session, names: list[str]) -> set[str]:
    """The models named and every model they were trained from (``base_model_id`` links, followed to the root)."""
    found = set(names)
    for name in names:
        record = session.scalar(select(ModelRecord).where(ModelRecord.name == name))
        while record is not None and record.base_model is not None:
            record = record.base_model
            if record.name in found:  # reached a lineage already walked
                break
            found.add(record.name)
    return found


def next_round(session: Session, parent_models: list[str]) -> int:
    """The loop's round of a campaign made from ``parent_models``: one more than the latest campaign that had one
    of them, or a model they were trained from, among its completion sources (1 when none had)."""
    lineage = model_ancestry(session, parent_models)
    rounds = [c.round for c in session.scalars(select(Campaign))
              if lineage & {src.get("model") for src in effective_sources(c)}]
    return max(rounds, default=0) + 1


def create_campaign_from(session: Session, name: str, *, prompts: list[str] | None = None,
                         upload: tuple[str, bytes] | None = None, dataset: dict | None = None,
                         playground_runs: list[int] | None = None, **options: Any) -> dict[str, Any]:
    """Create a campaign from exactly one prompt set: a list, an upload ``(filename, bytes)``, a dataset
    ``{ref, split, column, limit}``, or playground run ids (``[]`` = the latest runs). ``options`` go to
    ``create_campaign``. Returns ``campaign_summary``."""
    texts, source = load_prompt_set(session, prompts=prompts, upload=upload, dataset=dataset,
                                    playground_runs=playground_runs, source=str(options.pop("source", "user")))
    campaign = create_campaign(session, name, texts, source=source, **options)
    return campaign_summary(session, campaign.id)


def load_prompt_set(session: Session, *, prompts: list[str] | None = None, upload: tuple[str, bytes] | None = None,
                    dataset: dict | None = None, playground_runs: list[int] | None = None,
                    source: str = "user") -> tuple[list[str], str]:
    """The prompts of exactly one prompt set (see ``create_campaign_from``) and where they came from.

    Pages call it in a read transaction before creating the campaign: reading a dataset takes seconds, and
    SQLite's write lock should not be held meanwhile.
    """
    given = [x for x in (prompts, upload, dataset, playground_runs) if x is not None]
    if len(given) != 1:
        raise StudioError("Choose one prompt set: a list, an uploaded file, a dataset split or playground runs.")
    if upload is not None:
        return parse_prompt_file(*upload), "upload"
    if dataset is not None:
        texts = prompts_from_dataset(dataset.get("ref", ""), dataset.get("split", "train"),
                                     dataset.get("column", "prompt"), int(dataset.get("limit", 0)))
        return texts, f"dataset:{dataset.get('ref', '')}"
    if playground_runs is not None:
        return prompts_from_playground(session, playground_runs or None), "playground"
    return list(prompts), source


def find_campaign(session: Session, ref: int | str) -> Campaign:
    """A campaign by id or name."""
    campaign = session.get(Campaign, ref) if isinstance(ref, int) else \
        session.scalar(select(Campaign).where(Campaign.name == str(ref).strip()))
    if campaign is None:
        raise StudioError(f"There is no campaign {ref!r}.")
    return campaign


def set_status(session: Session, campaign_id: int, status: str) -> dict[str, Any]:
    """Move a campaign along open ⇄ closed → archived (→ closed)."""
    campaign = find_campaign(session, campaign_id)
    if status not in STATUSES:
        raise StudioError(f"Status must be one of {', '.join(STATUSES)}.")
    if status != campaign.status and status not in TRANSITIONS[campaign.status]:
        raise StudioError(f"A {campaign.status} campaign cannot become {status}"
                          + (": unarchive it first (it becomes closed)." if campaign.status == "archived" else "."))
    campaign.status = status
    session.flush()
    return campaign_summary(session, campaign.id)


def update_campaign(session: Session, campaign_id: int, *, guidelines: str | None = None,
                    overlap: int | None = None) -> dict[str, Any]:
    """Edit the guidelines or the overlap of an existing campaign (K and sources are fixed once created)."""
    campaign = find_campaign(session, campaign_id)
    if overlap is not None and (not isinstance(overlap, int) or not 1 <= overlap <= 100):
        raise StudioError("Overlap must be between 1 and 100 annotators per item.")
    if guidelines is not None and not guidelines.strip():
        raise StudioError("Guidelines cannot be empty.")
    campaign.guidelines = guidelines if guidelines is not None else campaign.guidelines
    campaign.overlap = overlap if overlap is not None else campaign.overlap
    session.flush()
    return campaign_summary(session, campaign.id)


def _per_campaign_counts():
    items = (select(func.count(CampaignItem.id)).where(CampaignItem.campaign_id == Campaign.id)
             .correlate(Campaign).scalar_subquery())
    judged = (select(func.count(Ranking.id)).join(CampaignItem, CampaignItem.id == Ranking.item_id)
              .where(CampaignItem.campaign_id == Campaign.id, Ranking.skipped.is_(False))
              .correlate(Campaign).scalar_subquery())
    return items, judged


def _summary(c: Campaign, n_items: int, n_judged: int) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "criterion": c.criterion, "k": c.k, "overlap": c.overlap,
            "status": c.status, "items": n_items, "rankings": n_judged, "needed": n_items * c.overlap,
            "round": c.round, "parent_models": list(c.parent_models or []),
            "sources": [s["label"] for s in effective_sources(c)],
            "created_at": c.created_at.isoformat(timespec="seconds") if c.created_at else None}


def list_campaigns(session: Session, status: str | list[str] | None = None) -> list[dict[str, Any]]:
    """Campaigns, newest first, with item and judgement counts (``status`` filters, e.g. ``"open"``)."""
    items, judged = _per_campaign_counts()
    stmt = select(Campaign, items, judged).order_by(Campaign.id.desc())
    if status:
        stmt = stmt.where(Campaign.status.in_([status] if isinstance(status, str) else status))
    return [_summary(c, n, j) for c, n, j in session.execute(stmt)]


def campaign_summary(session: Session, campaign_id: int) -> dict[str, Any]:
    items, judged = _per_campaign_counts()
    row = session.execute(select(Campaign, items, judged).where(Campaign.id == campaign_id)).first()
    if row is None:
        raise StudioError(f"There is no campaign {campaign_id}.")
    return _summary(*row)


def campaign_progress(session: Session, campaign_id: int) -> dict[str, Any]:
    """Items, items with completions, judgements (capped at the overlap per item), completed items, skips."""
    campaign = find_campaign(session, campaign_id)
    in_campaign = CampaignItem.campaign_id == campaign.id
    n_items = session.scalar(select(func.count(CampaignItem.id)).where(in_campaign))
    ready = session.scalar(select(func.count()).select_from(
        select(Completion.item_id).join(CampaignItem, CampaignItem.id == Completion.item_id).where(in_campaign)
        .group_by(Completion.item_id).having(complete_group(campaign.k)).subquery()))  # imported: own K
    per_item = (select(Ranking.item_id, func.count(Ranking.id).label("n"))
                .join(CampaignItem, CampaignItem.id == Ranking.item_id)
                .where(in_campaign, Ranking.skipped.is_(False)).group_by(Ranking.item_id).subquery())
    filled, complete = session.execute(select(
        func.coalesce(func.sum(case((per_item.c.n > campaign.overlap, campaign.overlap), else_=per_item.c.n)), 0),
        func.coalesce(func.sum(case((per_item.c.n >= campaign.overlap, 1), else_=0)), 0))).one()
    judged, skips, annotators, seconds = session.execute(
        select(func.coalesce(func.sum(case((Ranking.skipped.is_(False), 1), else_=0)), 0),
               func.coalesce(func.sum(Ranking.skipped.cast(Integer)), 0), func.count(func.distinct(Ranking.user_id)),
               func.avg(case((Ranking.skipped.is_(False), Ranking.seconds_spent))))
        .join(CampaignItem, CampaignItem.id == Ranking.item_id).where(in_campaign)).one()
    needed = n_items * campaign.overlap
    return {"campaign_id": campaign.id, "name": campaign.name, "status": campaign.status, "k": campaign.k,
            "overlap": campaign.overlap, "items": n_items, "items_ready": ready, "items_complete": complete,
            "judgements": judged, "judgements_needed": needed, "judgements_counted": filled,
            "skips": skips, "annotators": annotators, "mean_seconds": round(seconds or 0.0, 2),
            "fraction_done": filled / needed if needed else 0.0}


def annotator_progress(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """One row per annotator of the campaign: ranked, skipped, mean seconds per ranking, last activity."""
    campaign = find_campaign(session, campaign_id)
    rows = session.execute(
        select(User.id, User.name, func.sum(case((Ranking.skipped.is_(False), 1), else_=0)),
               func.sum(case((Ranking.skipped.is_(True), 1), else_=0)),
               func.avg(case((Ranking.skipped.is_(False), Ranking.seconds_spent))), func.max(Ranking.created_at))
        .join(Ranking, Ranking.user_id == User.id).join(CampaignItem, CampaignItem.id == Ranking.item_id)
        .where(CampaignItem.campaign_id == campaign.id).group_by(User.id, User.name).order_by(User.name))
    return [{"user_id": uid, "annotator": name, "ranked": int(ranked or 0), "skipped": int(skipped or 0),
             "mean_seconds": round(secs or 0.0, 2), "last_at": last.isoformat(timespec="seconds") if last else None}
            for uid, name, ranked, skipped, secs, last in rows]
