"""A campaign's rankings as numpy arrays, for statistics over 100,000 rankings in well under a second.

``records.load_items`` builds one Python object per item with the completion texts (what export needs); the
quality report needs none of the texts and works on whole arrays instead:

- completions are padded to the campaign's largest K: ``ranks`` is ``rankings × K`` with NaN where the
  completion is flagged or does not exist (``real`` says which exist);
- rankings are sorted by item (then by ranking id), so an item's judgements are one contiguous block.

The same rule as ``load_items`` applies: skipped rankings are left out, and so is a ranking that does not cover
every completion of its item (it cannot be interpreted). Two queries, no ORM objects.
"""

import json
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from backend.db.tables import CampaignItem, Completion, Ranking, User


@dataclass
class RankingMatrix:
    """Every usable ranking of one campaign (see the module docstring)."""

    item_ids: np.ndarray  # (items,) campaign item ids, in id order: items with at least one completion
    sources: list[str]  # source labels (model × decoding); "unknown" when a completion has none
    source_of: np.ndarray  # (items, K) index into ``sources``; -1 where the item has no such completion
    annotators: list[str]  # annotator names, sorted
    ranks: np.ndarray  # (rankings, K) float rank; NaN = flagged or no such completion
    item: np.ndarray  # (rankings,) index into ``item_ids``, ascending
    annotator: np.ndarray  # (rankings,) index into ``annotators``
    seconds: np.ndarray  # (rankings,) seconds spent

    @property
    def real(self) -> np.ndarray:
        """(items, K) True where the item has that completion."""
        return self.source_of >= 0


def _parse_json_texts(values: list) -> list:
    """Parse many small JSON documents at once (one ``json.loads`` of a joined array is several times faster)."""
    if all(isinstance(v, str) for v in values):
        return json.loads("[" + ",".join(values) + "]") if values else []
    return [json.loads(v) if isinstance(v, str) else v for v in values]


def _plain_rows(session: Session, statement) -> list[tuple]:
    """The statement's rows as the database driver returns them (tuples), without SQLAlchemy's Row objects: half
    the time at 100,000 rows. Only for columns that need no conversion (integers, text, floats)."""
    result = session.connection().execute(statement)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def load_ranking_matrix(session: Session, campaign_id: int) -> RankingMatrix:
    """The campaign's completions and non-skipped rankings as arrays (see the module docstring)."""
    completions = _plain_rows(session, (
        select(Completion.id, Completion.item_id, Completion.source_label)
        .join(CampaignItem, CampaignItem.id == Completion.item_id)
        .where(CampaignItem.campaign_id == campaign_id).order_by(Completion.id)))
    comp_ids = np.array([c[0] for c in completions], dtype=np.int64)
    item_ids, comp_item = np.unique(np.array([c[1] for c in completions], dtype=np.int64), return_inverse=True)
    # position of each completion within its item, in id order (as records.load_items numbers them)
    order = np.lexsort((comp_ids, comp_item))
    counts = np.bincount(comp_item, minlength=len(item_ids))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    comp_pos = np.empty(len(comp_ids), dtype=np.int64)
    comp_pos[order] = np.arange(len(comp_ids)) - starts[comp_item[order]]
    width = int(counts.max()) if len(counts) else 0
    sources = sorted({c[2] or "unknown" for c in completions})
    source_index = {s: i for i, s in enumerate(sources)}
    source_of = np.full((len(item_ids), width), -1, dtype=np.int64)
    source_of[comp_item, comp_pos] = [source_index[c[2] or "unknown"] for c in completions]

    # ranks/flags read as text and parsed in one go: SQLAlchemy's per-row JSON processing is the slow part
    rows = _plain_rows(session, (
        select(Ranking.item_id, User.name, cast(Ranking.ranks, Text), cast(Ranking.flags, Text),
               Ranking.seconds_spent)
        .join(User, User.id == Ranking.user_id).join(CampaignItem, CampaignItem.id == Ranking.item_id)
        .where(CampaignItem.campaign_id == campaign_id, Ranking.skipped.is_(False))
        .order_by(Ranking.item_id, Ranking.id)))
    item_column, name_column, rank_texts, flag_texts, seconds_column = zip(*rows) if rows else ((),) * 5
    ranking_item_ids = np.array(item_column, dtype=np.int64)
    ranking_item = np.searchsorted(item_ids, ranking_item_ids)
    known = ranking_item < len(item_ids)
    known[known] = item_ids[ranking_item[known]] == ranking_item_ids[known]
    rank_docs = _parse_json_texts(list(rank_texts))
    flag_docs = [[] if f in ("[]", None) else json.loads(f) if isinstance(f, str) else f for f in flag_texts]

    def place(row: np.ndarray, cid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kept, ranking row, position) of the completion ids that belong to the ranking's item."""
        if not len(comp_ids) or not len(cid):
            return np.zeros(len(cid), dtype=bool), row[:0], row[:0]
        at = np.minimum(np.searchsorted(comp_ids, cid), len(comp_ids) - 1)
        ok = known[row] & (comp_ids[at] == cid) & (comp_item[at] == ranking_item[row])
        return ok, row[ok], comp_pos[at[ok]]

    keys: list[str] = []
    rank_values: list = []
    for doc in rank_docs:
        keys.extend(doc)
        rank_values.extend(doc.values())
    per_doc = np.fromiter(map(len, rank_docs), dtype=np.int64, count=len(rank_docs))
    kept, rank_rows, rank_pos = place(np.repeat(np.arange(len(rows)), per_doc), np.array(keys, dtype=np.int64))
    values = np.array(rank_values, dtype=float)[kept]  # a null rank becomes NaN: no rank
    flag_ids = [int(f) for doc in flag_docs for f in doc]
    per_flag_doc = np.fromiter(map(len, flag_docs), dtype=np.int64, count=len(flag_docs))
    _, flag_rows, flag_pos = place(np.repeat(np.arange(len(rows)), per_flag_doc), np.array(flag_ids, dtype=np.int64))
    ranks = np.full((len(rows), width), np.nan)
    ranks[rank_rows, rank_pos] = values
    flagged = np.zeros((len(rows), width), dtype=bool)
    flagged[flag_rows, flag_pos] = True
    ranks[flagged] = np.nan
    # a ranking must rank or flag every completion of its item; one that does not is left out
    covered = ~np.isnan(ranks) | flagged | (source_of[np.where(known, ranking_item, 0)] < 0) if len(item_ids) else \
        np.zeros((len(rows), 0), dtype=bool)
    usable = known & covered.all(axis=1)
    names, annotator = np.unique(np.array(name_column, dtype=object)[usable].astype(str), return_inverse=True) \
        if usable.any() else (np.array([], dtype=str), np.zeros(0, dtype=np.int64))
    return RankingMatrix(item_ids=item_ids, sources=sources, source_of=source_of, annotators=names.tolist(),
                         ranks=ranks[usable], item=ranking_item[usable], annotator=annotator.astype(np.int64),
                         seconds=np.array(seconds_column, dtype=float)[usable])


def campaign_fingerprint(session: Session, campaign_id: int) -> tuple:
    """What changes whenever the report could: rankings and completions added or removed (rows are never edited
    in place: a correction is an undo, i.e. a delete, and a new row)."""
    rankings = session.execute(
        select(func.count(Ranking.id), func.max(Ranking.id))
        .join(CampaignItem, CampaignItem.id == Ranking.item_id).where(CampaignItem.campaign_id == campaign_id)).one()
    completions = session.execute(
        select(func.count(Completion.id), func.max(Completion.id))
        .join(CampaignItem, CampaignItem.id == Completion.item_id)
        .where(CampaignItem.campaign_id == campaign_id)).one()
    return tuple(rankings) + tuple(completions)
