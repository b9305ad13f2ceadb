"""Training overhead: the studio's SFT job runner against a plain TRL script, same LoRA step budget.

Both run in this process on the same model, the same demo examples (prompt/completion, chat format), batch,
steps, learning rate and seed, fp32, LoRA r=16 on the attention projections, logging every step:

- studio: ``jobs.queue.submit`` + ``jobs.run.main`` (a temporary data dir and database), i.e. the job's
  metrics rows, cancel checks, heartbeat, length policy, saving and registration;
- plain: ``SFTTrainer(...).train()`` and ``save_model``, nothing else.

Reported: the training-loop time (``train_runtime``), the end-to-end time (load to saved output),
tokens/s (TRL's ``num_tokens`` / ``train_runtime``) and the studio/plain ratios. Target: training-loop
overhead ratio ≤ 1.05. Runs alternate (plain, studio, studio, plain, …) after an untimed 1-step warm-up
of each, and medians are reported, so background CPU load hits both alike — on a shared 2-core machine
single runs still vary by ±10%.

    python benchmarks/training.py --model smollm2-135m-instruct --steps 8 --batch-size 4 --repeats 1
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEMPLATE = "summarize-conversation"
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def resolve_model_path(ref: str) -> str:
    """The model's folder, resolved with the user's own registry before switching to a scratch data dir."""
    from backend.db.engine import session_scope, upgrade_database
    from backend.models.store import resolve

    upgrade_database()
    with session_scope(write=True) as s:
        return resolve(s, ref).path


def use_scratch_data_dir(folder: Path) -> None:
    from backend.db.engine import reset_engines, upgrade_database
    from backend.settings import reset_settings_cache

    os.environ["STUDIO_DATA_DIR"] = str(folder)
    os.environ["STUDIO_WORKER_AUTOSTART"] = "false"
    reset_settings_cache()
    reset_engines()
    upgrade_database()


def plain_examples(n: int) -> list[dict]:
    """The demo training rows as TRL prompt/completion chat examples, built without the studio's helpers."""
    from backend.data.datasets_io import demo_dir
    from backend.prompts.templates import SUMMARY_TEMPLATES

    lines = (demo_dir() / "dialogsum" / "train.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    rows = [json.loads(line) for line in lines]
    return [{"prompt": [{"role": "user", "content": SUMMARY_TEMPLATES[TEMPLATE].format(dialogue=r["dialogue"])}],
             "completion": [{"role": "assistant", "content": r["summary"]}]} for r in rows]


def run_plain(model_path: str, steps: int, batch: int, max_length: int, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    config = SFTConfig(output_dir=str(out / "checkpoints"), max_steps=steps, learning_rate=3e-4, warmup_steps=0.1,
                       per_device_train_batch_size=batch, max_length=max_length, seed=42, logging_steps=1,
                       bf16=False, use_cpu=True, report_to="none", activation_checkpointing=False,
                       completion_only_loss=True, save_strategy="no", dataloader_num_workers=0, disable_tqdm=True)
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(plain_examples(steps * batch)),
                         processing_class=tokenizer, peft_config=peft)
    result = trainer.train()
    trainer.save_model(str(out / "model"))
    tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
    return {"train_runtime": result.metrics["train_runtime"], "end_to_end": time.perf_counter() - began,
            "tokens": tokens}


def run_studio(model_path: str, steps: int, batch: int, max_length: int) -> dict:
    from backend.db.engine import session_scope
    from jobs import artifacts, queue
    from jobs.run import main as run_job
    from jobs.specs import SFTSpec

    spec = SFTSpec.model_validate({
        "name": "bench", "base_model": model_path, "dataset": "demo:dialogsum", "template": TEMPLATE, "peft": "lora",
        "lora": LORA, "max_train_examples": steps * batch, "max_eval_examples": 0, "validation_share": 0,
        "train": {"max_steps": steps, "learning_rate": 3e-4, "warmup_ratio": 0.1, "batch_size": batch,
                  "max_length": max_length, "seed": 42, "logging_steps": 1, "precision": "fp32"}})
    with session_scope(write=True) as s:
        job_id = queue.submit(s, spec).id
    began = time.perf_counter()
    if run_job(job_id) != 0:
        raise SystemExit(f"studio job {job_id} failed: see {artifacts.log_path(job_id)}")
    end_to_end = time.perf_counter() - began
    with session_scope() as s:
        metrics = queue.job_metrics(s, job_id)
    last = {m["key"]: m["value"] for m in metrics}
    rates = [m["value"] for m in metrics if m["key"] == "train/tokens_per_second"]
    return {"train_runtime": last["train_runtime"], "end_to_end": end_to_end, "tokens": last["num_tokens"],
            "logged_tokens_per_second": statistics.median(rates) if rates else None}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Registered name or model folder.")
    parser.add_argument("--steps", type=int, default=8, help="Optimizer steps per run.")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=1, help="Timed runs of each (medians are reported).")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON only.")
    args = parser.parse_args(argv)

    import torch

    model_path = resolve_model_path(args.model)
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as tmp:
        use_scratch_data_dir(Path(tmp) / "data")
        run_plain(model_path, 1, args.batch_size, args.max_length, Path(tmp) / "warm-plain")  # warm-up, untimed
        run_studio(model_path, 1, args.batch_size, args.max_length)
        plain, studio = [], []
        for i in range(args.repeats):
            order = ("plain", "studio") if i % 2 == 0 else ("studio", "plain")
            for which in order:
                if which == "plain":
                    plain.append(run_plain(model_path, args.steps, args.batch_size, args.max_length,
                                           Path(tmp) / f"plain-{i}"))
                else:
                    studio.append(run_studio(model_path, args.steps, args.batch_size, args.max_length))

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    result = {
        "model": args.model, "steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length,
        "repeats": args.repeats, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "plain": {"train_runtime_s": med(plain, "train_runtime"), "end_to_end_s": med(plain, "end_to_end"),
                  "tokens_per_second": med(plain, "tokens") / med(plain, "train_runtime")},
        "studio": {"train_runtime_s": med(studio, "train_runtime"), "end_to_end_s": med(studio, "end_to_end"),
                   "tokens_per_second": med(studio, "tokens") / med(studio, "train_runtime"),
                   "logged_tokens_per_second": studio[0]["logged_tokens_per_second"]},
    }
    result["overhead_ratio_train"] = result["studio"]["train_runtime_s"] / result["plain"]["train_runtime_s"]
    result["overhead_ratio_end_to_end"] = result["studio"]["end_to_end_s"] / result["plain"]["end_to_end_s"]
    result["target_met"] = result["overhead_ratio_train"] <= 1.05
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"\nLoRA SFT, {args.steps} steps × batch {args.batch_size} on {args.model} "
              f"({result['threads']} threads, load average {result['load_average']:.1f})")
        print(f"{'':8} {'train loop s':>12} {'end-to-end s':>12} {'tokens/s':>9}")
        for name in ("plain", "studio"):
            r = result[name]
            print(f"{name:8} {r['train_runtime_s']:12.1f} {r['end_to_end_s']:12.1f} {r['tokens_per_second']:9.0f}")
        print(f"overhead ratio (train loop): {result['overhead_ratio_train']:.3f} "
              f"({'meets' if result['target_met'] else 'misses'} the ≤ 1.05 target); end-to-end "
              f"{result['overhead_ratio_end_to_end']:.3f}; studio's logged tokens/s (median) "
              f"{result['studio']['logged_tokens_per_second']:.0f}")
    return result


if __name__ == "__main__":
    main()
