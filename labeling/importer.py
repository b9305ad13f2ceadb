"""Import rankings collected elsewhere: one JSON object per line.

``{"prompt": str, "completions": [str, …], "ranks": [int, …], "annotator": str}`` with rank 1 = best and equal
ranks = tie; optional ``"flags": [bool, …]`` (a flagged completion's rank is ignored and may be null; the
remaining ranks are re-densified, so ranks (1, 2, 3) with the 2nd flagged store (1, 2) for the other two —
``pairs.kept_ranks``), ``"comment": str``, ``"seconds": number`` and ``"gold_best": n`` (the item is a gold item
whose known best is its n-th completion, 1-based; ``labeling.gold``). Unknown keys are ignored.

Each row brings its own number of completions, 2 to 9: K is the campaign's default for generated items, not a
rule for imported ones (``labeling.item_size``), so one file may mix K = 2 … 9 and pairs are expanded per item.

Caps (``backend.limits``): the file is at most ``MAX_IMPORT_BYTES``, a line at most ``MAX_LINE_CHARS``, a prompt or
completion at most ``MAX_PROMPT_CHARS``, ``seconds`` a finite number up to ``MAX_SECONDS`` (a day); a file with no
row at all is refused, not reported as an empty success.

Every row is validated on its own and written in its own savepoint: a line is either fully written (its
prompt, completions and ranking) or not at all. A bad line refuses only itself, not the file: it changes
nothing and is reported with its line number and a reason saying how to fix it; good lines are kept. The
report lists every line (``lines``): kept (item id, its K, how many rankings the item now has) or refused (why). The whole file is read and every row parsed
before anything is written; rows are then written in batches (at most ``IMPORT_BATCH_ROWS`` rows or
``IMPORT_BATCH_SECONDS`` of work), each batch one short transaction followed by a short pause, so a large import
never holds SQLite's write lock for long and writers waiting on it (heartbeats, annotators' submits) get their
turn. A row is never half-written (its prompt, completions and ranking go in together); an import
that is interrupted keeps the batches already committed, and running the same file again imports the rest
(the rows already stored are reported as already ranked). The campaign is created at the first good
row when it does not exist (its K, the default for generated items, from that row; later rows may have any K). Rows for a prompt
already in the campaign must carry the same completion texts (in any order: they are matched by text).
Annotators become users without a password (an admin can give them one); completions get the source label
``imported``.
"""

import json
import math
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.tables import Campaign, CampaignItem, Completion, Prompt, Ranking, User
from backend.errors import StudioError
from backend.limits import MAX_IMPORT_BYTES, MAX_LINE_CHARS, MAX_PROMPT_CHARS
from backend.textfiles import read_text_file
from labeling.accounts import NAME_RULE, name_problem
from labeling.campaigns import default_guidelines
from labeling.item_size import IMPORTED
from labeling.pairs import kept_ranks

IMPORT_BATCH_ROWS = 500  # at most this many rows per write transaction …
IMPORT_BATCH_SECONDS = 0.5  # … or this long holding SQLite's write lock
IMPORT_PAUSE_SECONDS = 0.1  # between batches: a waiting writer's busy handler polls at least every 0.1 s
MAX_SECONDS = 86_400.0  # time spent on one ranking: a day is already absurd
MAX_COMMENT_CHARS = 10_000
ROW_SHAPE = 'write one JSON object per line, e.g. {"prompt": …, "completions": […], "ranks": […], "annotator": …}'


class RowError(ValueError):
    """Why one row was rejected (reported, never raised to the caller)."""


def _read_lines(source: str | Path | Iterable[str]) -> Iterable[str]:
    if isinstance(source, str | Path):
        return read_text_file(source, hint="save it as UTF-8 JSONL", max_bytes=MAX_IMPORT_BYTES).splitlines()
    return source


def parse_row(line: str) -> dict[str, Any]:
    """One row checked on its own (shape, types, ranks); raises RowError with the reason."""
    if len(line) > MAX_LINE_CHARS:
        raise RowError(f"the line has {len(line):,} characters: a row may have at most {MAX_LINE_CHARS:,}")
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RowError(f"not valid JSON ({exc.msg} at column {exc.colno}): {ROW_SHAPE}") from None
    except RecursionError:
        raise RowError("not a ranking row: its JSON is nested too deeply") from None
    if not isinstance(row, dict):
        raise RowError(f"not a JSON object: {ROW_SHAPE}")
    missing = [k for k in ("prompt", "completions", "ranks", "annotator") if k not in row]
    if missing:
        raise RowError(f"missing {', '.join(missing)}: every row needs prompt, completions, ranks and annotator")
    prompt, completions, ranks, annotator = row["prompt"], row["completions"], row["ranks"], row["annotator"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise RowError("prompt must be a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise RowError(f"the prompt has {len(prompt):,} characters: the limit is {MAX_PROMPT_CHARS:,}")
    if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
        raise RowError("completions must be a list of strings")
    if not 2 <= len(completions) <= 9:
        raise RowError(f"{len(completions)} completions: K must be between 2 and 9 (give 2 to 9 completions)")
    if any(len(c) > MAX_PROMPT_CHARS for c in completions):
        raise RowError(f"a completion is longer than the limit of {MAX_PROMPT_CHARS:,} characters")
    if len(set(completions)) != len(completions):
        raise RowError("two completions have the same text: completions must be distinct")
    if not isinstance(ranks, list) or len(ranks) != len(completions):
        raise RowError(f"ranks must be a list with one rank per completion ({len(completions)})")
    flags = row.get("flags")
    if flags is None:
        flags = [False] * len(completions)
    if not isinstance(flags, list) or len(flags) != len(completions) or not all(isinstance(f, bool) for f in flags):
        raise RowError(f"flags must be a list of true/false, one per completion ({len(completions)})")
    if not isinstance(annotator, str) or not annotator.strip() or len(annotator.strip()) > 80:
        raise RowError("annotator must be a non-empty name of at most 80 characters")
    if name_problem(annotator.strip()):  # names are shown on pages: no markdown, HTML or link syntax
        raise RowError(f"annotator must be a user name of {NAME_RULE}")
    try:
        kept = kept_ranks(ranks, flags)
    except StudioError as exc:
        raise RowError(str(exc)) from None
    seconds = row.get("seconds", 0.0)
    if (isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds)
            or not 0 <= seconds <= MAX_SECONDS):
        raise RowError(f"seconds must be a number from 0 to {MAX_SECONDS:,.0f} (a day), not {str(seconds)[:30]}")
    comment = row.get("comment", "")
    if not isinstance(comment, str):
        raise RowError("comment must be a string")
    if len(comment) > MAX_COMMENT_CHARS:
        raise RowError(f"the comment has {len(comment):,} characters: the limit is {MAX_COMMENT_CHARS:,}")
    gold_best = row.get("gold_best")
    if gold_best is not None and (isinstance(gold_best, bool) or not isinstance(gold_best, int)
                                  or not 1 <= gold_best <= len(completions)):
        raise RowError(f"gold_best is the known best completion's position, 1 to {len(completions)} "
                       f"(a gold item needs its known best), not {str(gold_best)[:30]}")
    return {"prompt": prompt.strip(), "completions": completions, "ranks": kept, "given_ranks": ranks, "flags": flags,
            "annotator": annotator.strip(), "seconds": float(seconds), "comment": comment.strip(),
            "gold_best": gold_best}


class _Importer:
    """Caches the campaign's prompts, completions, users and (item, user) pairs so each row costs no lookups."""

    def __init__(self, session: Session, campaign_name: str, criterion: str):
        self.s, self.name, self.criterion = session, campaign_name, criterion
        self.campaign = session.scalar(select(Campaign).where(Campaign.name == campaign_name))
        self.items: dict[str, int] = {}  # prompt text → item id
        self.texts: dict[int, dict[str, int]] = {}  # item id → completion text → id
        self.judged: set[tuple[int, int]] = set()
        self.rankings: Counter[int] = Counter()  # item id → rankings stored (for the report)
        self.users = dict(session.execute(select(User.name, User.id)).all())
        if self.campaign is None:
            return
        if self.campaign.status == "archived":
            raise StudioError(f"Campaign '{campaign_name}' is archived: unarchive it before importing into it.")
        cid = self.campaign.id
        self.items = dict(session.execute(select(Prompt.text, CampaignItem.id).join(
            CampaignItem, CampaignItem.prompt_id == Prompt.id).where(CampaignItem.campaign_id == cid)).all())
        for comp_id, item_id, text in session.execute(select(Completion.id, Completion.item_id, Completion.text).join(
                CampaignItem, CampaignItem.id == Completion.item_id).where(CampaignItem.campaign_id == cid)):
            self.texts.setdefault(item_id, {})[text] = comp_id
        self.judged = set(session.execute(select(Ranking.item_id, Ranking.user_id).join(
            CampaignItem, CampaignItem.id == Ranking.item_id).where(CampaignItem.campaign_id == cid)).all())
        self.rankings.update(item_id for item_id, _ in self.judged)

    def check(self, row: dict) -> None:
        """Checks against what is stored (completion texts, repeats) before anything is written.

        Any K from 2 to 9 is fine (each item keeps its own); a prompt already in the campaign must come with the
        completions it already has, so that every ranking of one item covers the same completions."""
        item_id = self.items.get(row["prompt"])
        known = self.texts.get(item_id) if item_id is not None else None
        if known and set(known) != set(row["completions"]):
            raise RowError(f"the completions differ from the {len(known)} already stored for this prompt: give "
                           "the same completion texts (any order), or import into another campaign")
        user_id = self.users.get(row["annotator"])
        if item_id is not None and user_id is not None and (item_id, user_id) in self.judged:
            raise RowError(f"annotator '{row['annotator']}' already ranked this prompt: an annotator ranks a prompt "
                           "once, drop the repeated line")

    def write(self, row: dict) -> tuple[int, int, dict[str, int]]:
        """Store the row (prompt, completions, ranking); returns its item id, user id and completion ids by text."""
        s = self.s
        if self.campaign is None:
            self.campaign = Campaign(name=self.name, criterion=self.criterion, k=len(row["completions"]),
                                     guidelines=default_guidelines(self.criterion), overlap=1)
            s.add(self.campaign)
            s.flush()
        if (user_id := self.users.get(row["annotator"])) is None:
            user = User(name=row["annotator"], role="annotator")
            s.add(user)
            s.flush()
            user_id = user.id
        if (item_id := self.items.get(row["prompt"])) is None:
            prompt = Prompt(text=row["prompt"], source=IMPORTED)
            s.add(prompt)
            s.flush()
            item = CampaignItem(campaign_id=self.campaign.id, prompt_id=prompt.id)
            s.add(item)
            s.flush()
            item_id = item.id
        texts = self.texts.get(item_id)
        if not texts:
            prompt_id = s.get(CampaignItem, item_id).prompt_id
            made = [Completion(prompt_id=prompt_id, item_id=item_id, model_name=IMPORTED, prompt_text=row["prompt"],
                               text=t, source_label=IMPORTED, finish_reason="stop") for t in row["completions"]]
            s.add_all(made)
            s.flush()
            texts = {c.text: c.id for c in made}
        ids = [texts[t] for t in row["completions"]]
        if row.get("gold_best"):  # a gold item: its known best completion
            s.get(CampaignItem, item_id).gold_completion_id = ids[row["gold_best"] - 1]
        s.add(Ranking(item_id=item_id, user_id=user_id,
                      ranks={str(i): r for i, r in zip(ids, row["ranks"], strict=True) if r is not None},
                      flags=sorted(i for i, f in zip(ids, row["flags"], strict=True) if f),
                      comment=row["comment"], seconds_spent=row["seconds"]))
        s.flush()
        return item_id, user_id, texts

    def remember(self, row: dict, item_id: int, user_id: int, texts: dict[str, int]) -> None:
        """Only after the row's savepoint succeeded: cache what now exists."""
        self.users[row["annotator"]], self.items[row["prompt"]], self.texts[item_id] = user_id, item_id, texts
        self.judged.add((item_id, user_id))
        self.rankings[item_id] += 1


def kept_line(number: int, row: dict, item_id: int, rankings: int) -> dict[str, Any]:
    """One kept line of the report: which item, its K, and what was stored."""
    k, flagged = len(row["completions"]), sum(row["flags"])
    detail = f"ranking by {row['annotator']}: {k - flagged} of {k} completions ranked"
    if flagged:
        given = [r for r, f in zip(row["given_ranks"], row["flags"], strict=True) if not f]
        stored = [r for r in row["ranks"] if r is not None]
        detail += f", {flagged} flagged" + (f" (ranks {given} re-densified to {stored})" if given != stored else "")
    return {"line": number, "outcome": "kept", "item_id": item_id, "k": k, "rankings": rankings,
            "detail": f"{detail}; the item now has {rankings} ranking(s)"}


def refused_line(number: int, reason: str) -> dict[str, Any]:
    return {"line": number, "outcome": "refused", "item_id": None, "k": None, "rankings": None, "detail": reason}


def import_rankings(session: Session, source: str | Path | Iterable[str], campaign: str, *,
                    criterion: str = "helpfulness") -> dict[str, Any]:
    """Import a JSONL file (or lines) of rankings into ``campaign``, creating it when it does not exist.

    Each line is written whole or not at all (its own savepoint); a refused line does not refuse the file.

    Returns:
        ``{"campaign", "created", "accepted", "rejected": [{"line", "reason"}], "lines": [...]}`` where
        ``lines`` has one entry per non-blank line, in file order: ``{"line", "outcome": "kept" | "refused",
        "item_id", "k", "rankings", "detail"}`` (``detail`` says what was stored, or why the line was refused
        and how to fix it). Blank lines are ignored.

    Raises:
        StudioError: no campaign name, an unreadable or oversized file, or a file without any row (empty).
    """
    campaign = (campaign or "").strip()
    if not campaign or len(campaign) > 200:
        raise StudioError("Give the campaign a name (at most 200 characters).")
    lines = _read_lines(source)
    report_lines: list[dict[str, Any]] = []
    parsed = []
    for number, line in enumerate(lines, start=1):  # every row parsed before the first write
        if not line.strip():
            continue
        try:
            parsed.append((number, parse_row(line)))
        except RowError as exc:
            report_lines.append(refused_line(number, str(exc)))
    importer = _Importer(session, campaign, criterion)
    existed = importer.campaign is not None
    batch_rows, batch_started = 0, time.monotonic()
    for number, row in parsed:
        try:
            importer.check(row)
            before = importer.campaign
            try:
                with session.begin_nested():
                    written = importer.write(row)
            except IntegrityError as exc:
                raise RowError(f"conflicts with stored data ({str(exc.orig)[:120]}): another writer changed the "
                               "campaign meanwhile, run the import again") from None
            finally:
                if before is None and importer.campaign is not None and importer.campaign not in session:
                    importer.campaign = None  # the savepoint rolled the new campaign back too
            importer.remember(row, *written)
            report_lines.append(kept_line(number, row, written[0], importer.rankings[written[0]]))
        except RowError as exc:
            report_lines.append(refused_line(number, str(exc)))
        batch_rows += 1
        if batch_rows >= IMPORT_BATCH_ROWS or time.monotonic() - batch_started >= IMPORT_BATCH_SECONDS:
            session.commit()  # end the batch: release the write lock; the next statement takes it again
            time.sleep(IMPORT_PAUSE_SECONDS)
            batch_rows, batch_started = 0, time.monotonic()
    report_lines.sort(key=lambda r: r["line"])
    accepted = sum(r["outcome"] == "kept" for r in report_lines)
    if not report_lines:
        name = source if isinstance(source, str | Path) else "The import"
        raise StudioError(f"{name} holds no rankings (it is empty): {ROW_SHAPE}.")
    return {"campaign": campaign, "created": not existed and accepted > 0, "accepted": accepted,
            "rejected": [{"line": r["line"], "reason": r["detail"]} for r in report_lines if r["outcome"] == "refused"],
            "lines": report_lines}
