"""Evaluation: generate on a dataset split (batched) and score against the references.

Dataset: rows with the template's fields and ``target_field`` (the reference).
Logged metric keys: ``eval/rouge1``, ``eval/rouge2``, ``eval/rougeL``, ``eval/rougeLsum``,
``eval/bleu``, ``eval/toxicity``, ``eval/length_words``, ``eval/progress``.
Output: an ``eval_runs`` row with corpus metrics and one ``eval_results`` row per example.
"""

from backend.data.datasets_io import load_rows
from backend.db.engine import session_scope
from backend.db.tables import EvalResult, EvalRun
from backend.generation.engine import format_prompt, generate
from backend.metrics.text_metrics import score_texts
from backend.models.loader import load_model
from backend.models.store import resolve
from backend.prompts.templates import render, resolve_template, template_fields
from jobs.context import JobContext
from jobs.specs import EvalSpec

METRIC_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "toxicity", "length_words")


def run(ctx: JobContext) -> None:
    spec: EvalSpec = ctx.spec
    template = resolve_template(spec.template)
    rows = load_rows(spec.dataset, spec.split, template_fields(template) + [spec.target_field], spec.max_examples)
    with session_scope(write=True) as s:
        resolved = resolve(s, spec.model)
    ctx.raise_if_cancelled()
    loaded = load_model(resolved, precision=spec.precision)
    inputs = [render(template, row) for row in rows]
    prompts = [format_prompt(loaded.tokenizer, text, spec.chat_format) for text in inputs]
    predictions: list[str] = []
    for start in range(0, len(prompts), spec.batch_size):
        ctx.raise_if_cancelled()
        batch = prompts[start : start + spec.batch_size]
        predictions += [r[0].text.strip() for r in generate(loaded, batch, spec.decoding, batch_size=spec.batch_size)]
        ctx.log_metrics(len(predictions), {"eval/progress": len(predictions) / len(prompts)})
        print(f"generated {len(predictions)}/{len(prompts)}", flush=True)
    references = [str(row[spec.target_field]) for row in rows]
    scores = score_texts(predictions, references)
    corpus = {k: scores[k] for k in METRIC_KEYS if scores.get(k) is not None}
    ctx.log_metrics(len(predictions), {f"eval/{k}": v for k, v in corpus.items()})
    with session_scope(write=True) as s:
        run_row = EvalRun(job_id=ctx.job_id, model_id=resolved.id, model_name=resolved.name, dataset=spec.dataset,
                          split=spec.split, template=template, decoding=spec.decoding.model_dump(),
                          n_examples=len(rows), metrics=corpus)
        s.add(run_row)
        s.flush()
        s.add_all(EvalResult(eval_run_id=run_row.id, idx=i, input=inputs[i], reference=references[i],
                             prediction=predictions[i], scores={k: ex.get(k) for k in METRIC_KEYS if k in ex})
                  for i, ex in enumerate(scores["per_example"]))
    print("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in corpus.items()), flush=True)
