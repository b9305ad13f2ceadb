"""Template flags for ``studio generate``: ``--template``, ``--examples``, ``--shots`` and friends.

``add_template_flags(parser)`` adds the flags; ``apply_template(args, text)`` returns the prompt
with the template applied (the input fills the template's last empty ``{slot}``), built by the same
service as the playground (``services.prompt_building.build_prompt``). Without any of these
flags the text passes through unchanged. Nothing heavy is imported at module level (``studio
--help`` stays instant).
"""

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

from backend.errors import StudioError
from backend.textfiles import read_text_file

MAX_EXAMPLES_BYTES = 20_000_000


def add_template_flags(parser: argparse.ArgumentParser) -> None:
    """Add the prompt-template flag group to a parser."""
    g = parser.add_argument_group("prompt template")
    g.add_argument("--template", metavar="NAME", help="Apply a template from the library (e.g. sentiment, qa, "
                   "short-summary, cot-few-shot, rag-qa) or a saved one; the prompt fills its last empty {slot}.")
    g.add_argument("--var", action="append", default=None, metavar="NAME=VALUE",
                   help="Fill another {slot} of the template, e.g. --var target_language=German. Repeatable.")
    g.add_argument("--examples", metavar="FILE", help="Worked examples for few-shot prompts: JSONL, a JSON list, or "
                   "CSV, one example per row with every slot of the template, answer included.")
    g.add_argument("--shots", type=int, default=None, metavar="K", help="Examples to show: 0 = zero-shot, 1 = "
                   "one-shot, K = few-shot (default: every example in --examples, else 0; the template's own "
                   "examples are used when --examples is not given).")
    g.add_argument("--select", choices=["first", "random", "similar"], default="first",
                   help="Which examples: the first K, K at random, or the K most similar to the prompt.")
    g.add_argument("--cot", action="store_true", help="Chain-of-thought: add \"Let's think step by step.\"")
    g.add_argument("--rag", metavar="COLLECTION", help="Retrieve passages from this document collection into the "
                   "template's {context} (default template: rag-qa).")
    g.add_argument("--rag-k", type=int, default=3, metavar="K", help="Passages to retrieve (default 3).")


def read_examples_file(path: str) -> list[dict[str, str]]:
    """Examples from a JSONL, JSON (list of objects) or CSV file, with messages that say what to fix."""
    p = Path(path).expanduser()
    if p.is_file() and p.stat().st_size > MAX_EXAMPLES_BYTES:
        raise StudioError(f"{p.name} is over 20 MB: examples files hold a few worked examples.")
    text = read_text_file(path, "examples file")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        rows: list[Any] = list(csv.DictReader(io.StringIO(text)))
    elif suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StudioError(f"{p.name} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
        except RecursionError:
            raise StudioError(f"{p.name}: its JSON is nested too deeply to be a list of examples.") from None
        if not isinstance(rows, list):
            raise StudioError(f"{p.name} must hold a JSON list of examples, like [{{\"review\": …, \"sentiment\": …}}].")
    elif suffix in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise StudioError(f"{p.name}, line {n}: not valid JSON ({exc.msg}).") from None
            except RecursionError:
                raise StudioError(f"{p.name}, line {n}: its JSON is nested too deeply.") from None
    else:
        raise StudioError(f"{p.name}: give examples as .jsonl, .json or .csv.")
    if not rows:
        raise StudioError(f"{p.name} holds no examples.")
    bad = next((i for i, r in enumerate(rows, 1) if not isinstance(r, dict)), None)
    if bad is not None:
        raise StudioError(f"{p.name}: example {bad} is not an object with named fields.")
    return [{str(k): "" if v is None else str(v) for k, v in r.items()} for r in rows]


def _parse_vars(items: list[str] | None) -> dict[str, str]:
    values = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise StudioError(f"--var '{item}': write NAME=VALUE, e.g. --var target_language=German.")
        values[name.strip()] = value
    return values


def apply_template(args: argparse.Namespace, text: str) -> str:
    """The prompt with the template flags applied (unchanged when none is given).

    Sets ``args.template_label`` (e.g. "sentiment · few-shot (2)") for reporting.
    """
    from pydantic import ValidationError

    from backend.db.engine import session_scope
    from services.prompt_building import PromptSpec, build_prompt

    args.template_label = None
    used = any([args.template, args.var, args.examples, args.shots, args.cot, args.rag])
    if not used:
        return text
    if not (args.template or args.rag):
        raise StudioError("--var, --examples, --shots and --cot need a --template (e.g. --template sentiment).")
    examples = read_examples_file(args.examples) if args.examples else None
    shots = args.shots if args.shots is not None else (len(examples) if examples else 0)
    if shots < 0:
        raise StudioError("--shots must be 0 or more.")
    try:
        spec = PromptSpec(template=args.template, values=_parse_vars(args.var), shots=shots, examples=examples,
                          selection=args.select, cot=args.cot, rag_collection=args.rag, rag_k=args.rag_k)
    except ValidationError as exc:
        raise StudioError("Invalid template settings — " + "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    with session_scope() as session:
        built = build_prompt(session, spec, text)
    args.template_label = built.label
    return built.text
