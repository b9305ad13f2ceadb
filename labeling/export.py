"""From stored rankings to preference data in TRL's format: ``prompt``, ``chosen``, ``rejected`` (+ ``margin``).

Choices (the same on the page, in the CLI and for jobs):

- ``strategy``: ``all`` C(K,2) pairs, ``best-vs-rest`` or ``best-vs-worst`` (``labeling.pairs``). Ties give no
  pair; flagged completions are removed first.
- per annotator (default: every annotator's pairs are kept, so a pair two annotators agree on counts twice)
  or ``consensus``: one consensus ranking per item first (``agreement.consensus_ranking``).
- ``max_disagreement``: drop items judged by several annotators whose pooled pairwise agreement is below
  ``1 − max_disagreement`` (items with a single annotator are kept).
- ``margin``: add the rank gap of each pair, after renumbering ties densely (1, 1, 3 → 1, 1, 2), as a float.

``prompt`` is the item's prompt text as the annotators saw it (no chat template: trainers apply their own);
``chosen``/``rejected`` are completion texts. Splits are by prompt, deterministic for a seed, so the pairs
of one ranking never straddle train and test.
"""

import contextlib
import json
import math
import os
import random
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backend.errors import StudioError
from labeling.agreement import consensus_ranking, item_agreement
from labeling.pairs import Strategy, dense_ranks, ranking_to_pairs
from labeling.records import ItemRecord, load_items

STRATEGIES = ("all", "best-vs-rest", "best-vs-worst")
FORMATS = ("jsonl", "parquet")


def check_options(strategy: str = "all", max_disagreement: float | None = None, test_size: float = 0.0) -> None:
    if strategy not in STRATEGIES:
        raise StudioError(f"Pairs must be one of {', '.join(STRATEGIES)}, not '{strategy}'.")
    if max_disagreement is not None and not 0 <= max_disagreement <= 1:
        raise StudioError("The disagreement threshold is a share between 0 and 1.")
    if not 0 <= test_size < 1:
        raise StudioError("The test share must be at least 0 and below 1 (e.g. 0.1).")


def preference_rows(records: list[ItemRecord], *, strategy: Strategy = "all", consensus: bool = False,
                    margin: bool = False, max_disagreement: float | None = None) -> tuple[list[dict], dict[str, int]]:
    """TRL preference rows from item records, and counts of what was used and dropped (pure)."""
    check_options(strategy, max_disagreement)
    rows: list[dict[str, Any]] = []
    stats = {"items": 0, "rankings": 0, "dropped_for_disagreement": 0, "pairs": 0}
    for record in records:
        if not record.judgements:
            continue
        if max_disagreement is not None and len(record.judgements) > 1:
            agreement = item_agreement(record.judgements)
            if agreement is not None and 1 - agreement > max_disagreement + 1e-12:
                stats["dropped_for_disagreement"] += 1
                continue
        stats["items"] += 1
        stats["rankings"] += len(record.judgements)
        rankings = [consensus_ranking(list(record.judgements.values()))] if consensus else \
            [record.judgements[a] for a in sorted(record.judgements)]
        for ranks in rankings:
            for pair in ranking_to_pairs(dense_ranks(ranks), strategy=strategy):
                row = {"prompt": record.prompt, "chosen": record.texts[pair.chosen],
                       "rejected": record.texts[pair.rejected]}
                if margin:
                    row["margin"] = float(pair.margin)
                rows.append(row)
    stats["pairs"] = len(rows)
    return rows, stats


def split_by_prompt(rows: list[dict], test_size: float = 0.1, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Train and test rows; every prompt's rows go to one side. At least one prompt each when there are two."""
    check_options(test_size=test_size)
    prompts = list(dict.fromkeys(r["prompt"] for r in rows))
    if test_size == 0 or len(prompts) < 2:
        return list(rows), []
    random.Random(seed).shuffle(prompts)
    n_test = min(len(prompts) - 1, max(1, math.floor(test_size * len(prompts) + 0.5)))
    test_prompts = set(prompts[:n_test])
    return [r for r in rows if r["prompt"] not in test_prompts], [r for r in rows if r["prompt"] in test_prompts]


def _atomic_write(path: Path, write) -> Path:
    """Write to a temporary sibling and rename: a failed export never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        tmp.replace(path)
    except OSError as exc:
        raise StudioError(f"Could not write {path}: {exc.strerror or exc}.") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


def _columns(rows: list[dict]) -> list[str]:
    return ["prompt", "chosen", "rejected"] + (["margin"] if rows and "margin" in rows[0] else [])


def write_rows(rows: list[dict], path: str | Path, fmt: str = "jsonl", columns: list[str] | None = None) -> Path:
    """Write preference rows as JSONL (one object a line, UTF-8) or Parquet (``columns`` default from the rows)."""
    path = Path(path)
    if fmt == "jsonl":
        return _atomic_write(path, lambda tmp: tmp.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"))
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"margin": pa.float64()}
        table = pa.Table.from_pydict({c: pa.array([r[c] for r in rows], type=types.get(c, pa.string()))
                                      for c in columns or _columns(rows)})
        return _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    raise StudioError(f"Format must be one of {', '.join(FORMATS)}, not '{fmt}'.")


def campaign_rows(session: Session, campaign: int | str, **options: Any) -> tuple[list[dict], dict[str, int]]:
    """Preference rows of a campaign (``options`` as in ``preference_rows``); refuses when there are none."""
    from labeling.campaigns import find_campaign

    found = find_campaign(session, campaign)
    rows, stats = preference_rows(load_items(session, found.id), **options)
    if not stats["rankings"] and not stats["dropped_for_disagreement"]:
        raise StudioError(f"Campaign '{found.name}' has no rankings yet: nothing to export.")
    if not rows:
        raise StudioError(f"Campaign '{found.name}' gives no preference pair with these settings "
                          f"({stats['items']} items kept, {stats['dropped_for_disagreement']} dropped for "
                          "disagreement; ties and flags give no pairs).")
    return rows, stats


def export_campaign(session: Session, campaign: int | str, out: str | Path, *, fmt: str | None = None,
                    strategy: Strategy = "all", margin: bool = False, consensus: bool = False,
                    max_disagreement: float | None = None, test_size: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Write a campaign's preference pairs and say what was written.

    With ``test_size`` 0, ``out`` is one file. Otherwise ``out`` is a folder that gets ``train.<fmt>`` and
    ``test.<fmt>`` — the layout ``backend.data.datasets_io`` reads, so jobs can use the folder as a dataset.
    ``fmt`` defaults to the file's suffix, else JSONL. ``out`` must lie inside the data dir or a folder of
    ``STUDIO_ALLOWED_PATHS`` (``backend.limits.confine``).
    """
    from backend.limits import confine

    out = confine(out, "output")
    fmt = fmt or (out.suffix.lstrip(".").lower() if out.suffix.lower() in (".jsonl", ".parquet") else "jsonl")
    if fmt not in FORMATS:
        raise StudioError(f"Format must be one of {', '.join(FORMATS)}, not '{fmt}'.")
    if test_size == 0 and out.suffix.lower() in (".jsonl", ".parquet") and out.suffix.lower() != f".{fmt}":
        raise StudioError(f"--out ends with {out.suffix} but the format is {fmt}: make them match.")
    if out.is_dir() and test_size == 0:
        raise StudioError(f"{out} is a folder: give a file name, or a test share to write train/test files there.")
    if out.is_file() and test_size > 0:
        raise StudioError(f"{out} is a file: with a test share, --out names a folder for train/test files.")
    check_options(strategy, max_disagreement, test_size)
    rows, stats = campaign_rows(session, campaign, strategy=strategy, margin=margin, consensus=consensus,
                                max_disagreement=max_disagreement)
    if test_size == 0:
        files = {"all": str(write_rows(rows, out, fmt))}
        counts = {"all": len(rows)}
    else:
        train, test = split_by_prompt(rows, test_size, seed)
        columns = _columns(rows)
        files = {"train": str(write_rows(train, out / f"train.{fmt}", fmt, columns)),
                 "test": str(write_rows(test, out / f"test.{fmt}", fmt, columns))}
        counts = {"train": len(train), "test": len(test)}
    return {**stats, "files": files, "rows": counts, "format": fmt, "strategy": strategy, "consensus": consensus,
            "margin": margin}


def safe_name(text: str) -> str:
    """A file name from free text: letters, digits, ``.-_`` only (never a path)."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", text or "").strip("-.")[:120] or "pairs"


def export_to_data_dir(session: Session, campaign: int | str, name: str, *, fmt: str = "jsonl",
                       test_size: float = 0.0, **options: Any) -> dict[str, Any]:
    """``export_campaign`` into ``<data dir>/datasets/preferences/``, where jobs read datasets.

    ``name`` becomes ``<name>.<fmt>`` (no test share) or a folder ``<name>/`` with ``train``/``test`` files; a
    previous export of the same name is replaced. The result adds ``dataset``: the path to give a job.
    """
    from backend.settings import get_settings

    if fmt not in FORMATS:
        raise StudioError(f"Format must be one of {', '.join(FORMATS)}, not '{fmt}'.")
    folder = get_settings().datasets_dir / "preferences"
    stem = safe_name(name)
    out = folder / stem if test_size > 0 else folder / f"{stem}.{fmt}"
    if test_size > 0 and out.is_file() or test_size == 0 and out.is_dir():
        raise StudioError(f"{out} already exists as a {'file' if out.is_file() else 'folder'}: choose another name.")
    report = export_campaign(session, campaign, out, fmt=fmt, test_size=test_size, **options)
    return {**report, "dataset": str(out)}
