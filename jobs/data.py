"""Training and evaluation data: dataset references (demo, files, hub), rows → prompt/completion examples.

A dataset reference is ``demo:dialogsum``, a JSONL/CSV/Parquet file or folder (see
``backend.data.datasets_io``), or a hub dataset: ``hub:org/name``, or a bare ``org/name`` that is not a
local path. Hub datasets need network access (or a warm ``datasets`` cache); offline they fail with a
message that says so.

Long examples (policy ``SFTSpec.long_examples``): ``truncate`` keeps them and lets the trainer cut their
end at ``max_length`` (an example whose prompt alone fills ``max_length`` has no completion token left
and is dropped), ``skip`` drops every example over ``max_length``, ``refuse`` fails the job. Nothing is
dropped silently: the counts are returned for the log and the ``data/*`` metrics.
"""

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from backend.data.datasets_io import check_dataset_ref, load_rows
from backend.errors import StudioError
from backend.prompts.templates import render, resolve_template, template_fields
from jobs.specs import SFTSpec

HUB_PREFIX = "hub:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$", re.ASCII)


def hub_name(ref: str) -> str | None:
    """The hub dataset a reference names, or None for the demo set and local files.

    ``hub:`` must be followed by an id like ``org/name``: ``datasets`` would also open a local folder given there
    (``hub:/etc``), which would get around the data-dir confinement of local paths.
    """
    if ref.startswith(HUB_PREFIX):
        name = ref.removeprefix(HUB_PREFIX)
        if not _HUB_ID.match(name) or ".." in name:
            raise StudioError(f"'{ref[:120]}' is not a hub dataset id: write hub:org/name (letters, digits, '.', "
                              "'-', '_'), or give a local file without the hub: prefix.")
        return name
    if _HUB_ID.match(ref) and ".." not in ref and not Path(ref).expanduser().exists():
        return ref
    return None


def _hub_error(name: str, exc: Exception) -> StudioError:
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return StudioError(f"Dataset '{name}' is not a local file, and the hub dataset of that name could not be loaded "
                       f"({first}). The hub may be unreachable (offline): download the data and give its "
                       "JSONL/CSV/Parquet file, or use demo:dialogsum.")


def dataset_splits(ref: str) -> list[str]:
    """The splits a dataset reference offers (raises ``StudioError`` when it cannot be found or reached)."""
    name = hub_name(ref)
    if name is None:
        return check_dataset_ref(ref)
    import datasets

    try:
        return list(datasets.get_dataset_split_names(name))
    except Exception as exc:  # noqa: BLE001 - offline, unknown name, gated: all mean "cannot use it"
        raise _hub_error(name, exc) from None


def read_rows(ref: str, split: str, required: list[str], limit: int = 0) -> list[dict]:
    """Rows of one split, checked for the required columns and empty values."""
    name = hub_name(ref)
    if name is None:
        try:
            return load_rows(ref, split, required, limit)
        except UnicodeDecodeError as exc:  # pyarrow reads JSON bytes unchecked and fails when converting rows
            raise StudioError(f"Dataset '{ref}' split '{split}' is not valid UTF-8 text ({exc.reason} at byte "
                              f"{exc.start}): save the file as UTF-8.") from None
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as exc:  # noqa: BLE001
        raise _hub_error(name, exc) from None
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise StudioError(f"Hub dataset '{name}' lacks the column(s) {', '.join(missing)} (it has: "
                          f"{', '.join(ds.column_names)}).")
    rows = ds.select(range(min(limit, len(ds)))).to_list() if limit else ds.to_list()
    empty = [i for i, row in enumerate(rows) if any(row.get(c) in (None, "") for c in required)]
    if empty:
        raise StudioError(f"Hub dataset '{name}' split '{split}': {len(empty)} row(s) have an empty required field "
                          f"(first: row {empty[0] + 1}).")
    if not rows:
        raise StudioError(f"Hub dataset '{name}' has no rows in split '{split}'.")
    return rows


def templates_of(spec: SFTSpec) -> list[str]:
    """The template texts a spec trains with (one, or the mix)."""
    return [resolve_template(t) for t in (spec.template_mix or [spec.template])]


def required_columns(spec: SFTSpec) -> list[str]:
    fields = [f for t in templates_of(spec) for f in template_fields(t)]
    return list(dict.fromkeys([*fields, spec.target_field]))


def check_templates(spec) -> None:
    """Every template must use at least one data field, or every example would get the same prompt."""
    names = spec.template_mix if isinstance(spec, SFTSpec) and spec.template_mix else [spec.template]
    for name in names:
        if not template_fields(resolve_template(name)):
            shown = name if len(name) <= 60 else name[:57] + "…"
            raise StudioError(f"Template '{shown}' has no {{field}} from the data (e.g. {{dialogue}}): every example "
                              "would get the same prompt. Use a template name from the library or add a field.")


def to_examples(rows: list[dict], spec: SFTSpec, offset: int = 0) -> list[dict]:
    """Prompt/completion examples (chat messages for chat models); each row gets one of the spec's templates.

    The template of a mix is drawn per row from ``random.Random(seed + row index)``, so an example keeps its
    phrasing whichever rows are selected around it. ``offset`` is the rows' index in their split.
    """
    templates = templates_of(spec)
    out = []
    for i, row in enumerate(rows):
        template = templates[0] if len(templates) == 1 else random.Random(spec.train.seed + offset + i).choice(
            templates)
        try:
            prompt = render(template, row)
        except ValueError as exc:
            raise StudioError(str(exc)) from None
        completion = str(row[spec.target_field])
        if spec.chat_format:
            out.append({"prompt": [{"role": "user", "content": prompt}],
                        "completion": [{"role": "assistant", "content": completion}]})
        else:
            out.append({"prompt": prompt, "completion": " " + completion})
    return out


@dataclass
class SFTData:
    train: list[dict]
    validation: list[dict] = field(default_factory=list)
    validation_source: str = "none"  # "split", "held out" or "none"


def load_sft_data(spec: SFTSpec, limit: int | None = None) -> SFTData:
    """Training and validation examples for a spec (``limit`` caps the training rows read, for previews)."""
    splits = dataset_splits(spec.dataset)
    if "train" not in splits:
        raise StudioError(f"Dataset '{spec.dataset}' has no 'train' split (it has: {', '.join(splits) or 'none'}).")
    required = required_columns(spec)
    n_train = spec.max_train_examples if limit is None else min(limit, spec.max_train_examples or limit)
    rows = read_rows(spec.dataset, "train", required, n_train)
    if spec.max_eval_examples and "validation" in splits:
        val = read_rows(spec.dataset, "validation", required, spec.max_eval_examples)
        return SFTData(to_examples(rows, spec), to_examples(val, spec), "split")
    if spec.max_eval_examples and spec.validation_share and len(rows) >= 2:
        order = list(range(len(rows)))
        random.Random(spec.train.seed).shuffle(order)
        n_val = min(spec.max_eval_examples, max(1, round(len(rows) * spec.validation_share)))
        held = set(order[:n_val])
        examples = to_examples(rows, spec)
        return SFTData([e for i, e in enumerate(examples) if i not in held],
                       [e for i, e in enumerate(examples) if i in held], "held out")
    return SFTData(to_examples(rows, spec))


def example_lengths(example: dict, tokenizer) -> tuple[int, int]:
    """(prompt tokens, prompt + completion tokens) of one example as the trainer will see it (roughly: TRL
    tokenizes the same messages with the same chat template)."""
    if isinstance(example["prompt"], list):
        def n(messages, gen):
            out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen)
            return len(out["input_ids"] if hasattr(out, "keys") else out)

        return n(example["prompt"], True), n(example["prompt"] + example["completion"], False)
    prompt = len(tokenizer(example["prompt"])["input_ids"])
    return prompt, prompt + len(tokenizer(example["completion"], add_special_tokens=False)["input_ids"]) + 1


def apply_length_policy(examples: list[dict], tokenizer, max_length: int, policy: str,
                        what: str = "training") -> tuple[list[dict], dict[str, int]]:
    """Apply ``long_examples`` to examples; returns the kept ones and counts for the log and metrics."""
    lengths = [example_lengths(e, tokenizer) for e in examples]
    over = [i for i, (_, total) in enumerate(lengths) if total > max_length]
    no_room = {i for i in over if lengths[i][0] >= max_length}
    if over and policy == "refuse":
        longest = max(total for _, total in lengths)
        raise StudioError(f"{len(over)} of {len(examples)} {what} examples are longer than train.max_length="
                          f"{max_length} tokens (longest: {longest}): raise max_length, or set long_examples to "
                          "truncate or skip.")
    drop = set(over) if policy == "skip" else no_room
    kept = [e for i, e in enumerate(examples) if i not in drop]
    if examples and not kept:
        why = " (their prompts alone fill it)" if policy == "truncate" else ""
        raise StudioError(f"All {len(examples)} {what} examples are longer than train.max_length={max_length} "
                          f"tokens{why}: raise max_length.")
    stats = {"examples": len(kept), "truncated": len(over) - len(drop), "dropped": len(drop),
             "longest_tokens": max((total for _, total in lengths), default=0)}
    return kept, stats
