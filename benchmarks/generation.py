"""Generation speed: the studio's engine against a plain ``model.generate`` loop, same model and settings.

Measures, in one run (median of ``--repeats`` after one warm-up; studio and plain calls alternate so
background load hits both alike):

- time to first token: ``generate(max_new_tokens=1)`` both ways, plus the streamed first text;
- tokens/s at batch 1 for greedy, sampling (T 0.7, top-p 0.9, top-k 50) and 4-beam search; every
  call is forced to exactly ``--max-new-tokens`` tokens (``min_new_tokens``) so lengths match;
- n=4 completions of one prompt, generated as one batch (``num_return_sequences=4``) vs one by one.

Targets: studio overhead < 5 %; batched n=4 at least 2x faster than sequential. On a shared CPU,
end-to-end medians swing by 10-60 % with background load, so the script also times the studio's
own code outside ``model.generate`` within each call (tokenising, checks, decoding the output) —
a figure load barely moves.

    python benchmarks/generation.py --max-new-tokens 64 --repeats 3 --out bench.json
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = (
    "Summarize the following conversation.\n\n"
    "#Person1#: Hi, I booked a double room for three nights starting Friday, but my flight was moved to "
    "Saturday morning. Can I change the booking?\n#Person2#: Of course. Let me check availability. We have a "
    "double room from Saturday to Monday, but the rate is a little higher on Sunday.\n#Person1#: How much "
    "higher?\n#Person2#: Twenty dollars more for that night, and breakfast is included.\n#Person1#: That's "
    "fine. Please also note that I will arrive late, around eleven at night.\n#Person2#: No problem, the front "
    "desk is open all night. I've updated your booking.\n\nSummary:"
)


def _timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def run(model_ref: str | None, max_new_tokens: int, repeats: int, precision: str) -> dict:
    import torch

    from backend.db.engine import session_scope, upgrade_database
    from backend.generation.decoding import DecodingConfig
    from backend.generation.engine import format_prompt, generate, stream
    from services.playground import open_model

    upgrade_database()
    with session_scope(write=True) as s:
        resolved, loaded = open_model(s, model_ref, precision)
    tok, model = loaded.tokenizer, loaded.model
    prompt = format_prompt(tok, PROMPT, chat=bool(getattr(tok, "chat_template", None)))
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(loaded.device)
    n = max_new_tokens

    original_generate = model.generate
    inner = {"s": 0.0}
    wrapper_ms: list[float] = []

    def timed_generate(*args, **kwargs):  # time spent inside model.generate during studio calls
        began = time.perf_counter()
        try:
            return original_generate(*args, **kwargs)
        finally:
            inner["s"] += time.perf_counter() - began

    model.generate = timed_generate  # the studio path calls the instance attribute; plain() calls the original

    def plain(cfg: DecodingConfig):
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        with torch.inference_mode():
            original_generate(**enc, **cfg.generate_kwargs(), pad_token_id=tok.pad_token_id)

    def studio(cfg: DecodingConfig):
        """The studio path; also records its own time outside model.generate (noise-free overhead)."""
        inner["s"] = 0.0
        began = time.perf_counter()
        generate(loaded, [prompt], cfg)
        wrapper_ms.append(1000 * (time.perf_counter() - began - inner["s"]))

    fixed = {"max_new_tokens": n, "min_new_tokens": n}
    configs = {
        "greedy": DecodingConfig(**fixed),
        "sampling": DecodingConfig(do_sample=True, temperature=0.7, top_p=0.9, top_k=50, seed=0, **fixed),
        "beam4": DecodingConfig(num_beams=4, **fixed),
    }
    results: dict = {"rows": {}}

    # warm-up: first calls pay for lazy imports and allocator growth
    plain(configs["greedy"].model_copy(update={"max_new_tokens": 4, "min_new_tokens": 4}))
    studio(configs["greedy"].model_copy(update={"max_new_tokens": 4, "min_new_tokens": 4}))

    one = DecodingConfig(max_new_tokens=1)
    t_plain, t_studio, t_stream = [], [], []
    for _ in range(repeats):
        t_plain.append(_timed(lambda: plain(one)))
        t_studio.append(_timed(lambda: studio(one)))
        chunks = list(stream(loaded, prompt, DecodingConfig(max_new_tokens=8, min_new_tokens=8)))
        t_stream.append(chunks[-1].result.first_token_seconds or float("nan"))
    results["ttft"] = {"plain_s": statistics.median(t_plain), "studio_s": statistics.median(t_studio),
                       "studio_stream_first_text_s": statistics.median(t_stream)}

    for name, cfg in configs.items():
        tp, ts = [], []
        for i in range(repeats):  # alternate which goes first, so a load spike does not always hit the same side
            first, second = (plain, studio) if i % 2 == 0 else (studio, plain)
            a, b = _timed(lambda f=first, cfg=cfg: f(cfg)), _timed(lambda f=second, cfg=cfg: f(cfg))
            tp.append(a if first is plain else b)
            ts.append(b if first is plain else a)
        p, s_ = statistics.median(tp), statistics.median(ts)
        outside = statistics.median(wrapper_ms[-repeats:])
        results["rows"][name] = {"studio_outside_generate_ms": outside, "outside_pct": 100 * outside / 1000 / p,
                                 "plain_tok_s": n / p, "studio_tok_s": n / s_, "plain_s": p, "studio_s": s_,
                                 "overhead_pct": 100 * (s_ - p) / p, "plain_runs_s": tp, "studio_runs_s": ts,
                                 "overhead_best_pct": 100 * (min(ts) - min(tp)) / min(tp),
                                 # each studio run against the plain run next to it: robust to slow drifts in load
                                 "overhead_paired_pct": 100 * (statistics.median(b / a for a, b in zip(tp, ts)) - 1)}

    batched_cfg = configs["sampling"].model_copy(update={"num_return_sequences": 4})
    single_cfgs = [configs["sampling"].model_copy(update={"seed": i}) for i in range(4)]
    tb, tq, tpb = [], [], []
    for _ in range(repeats):
        tb.append(_timed(lambda: studio(batched_cfg)))
        tq.append(_timed(lambda: [studio(c) for c in single_cfgs]))
        tpb.append(_timed(lambda: plain(batched_cfg)))
    b, q, pb = statistics.median(tb), statistics.median(tq), statistics.median(tpb)
    results["n4"] = {"batched_s": b, "sequential_s": q, "speedup": q / b, "batched_tok_s": 4 * n / b,
                     "sequential_tok_s": 4 * n / q, "plain_batched_s": pb, "overhead_pct": 100 * (b - pb) / pb,
                     "batched_runs_s": tb, "sequential_runs_s": tq, "plain_batched_runs_s": tpb}
    results["meta"] = {
        "model": resolved.name, "precision": precision, "device": loaded.device, "dtype": str(model.dtype),
        "max_new_tokens": n, "repeats": repeats, "prompt_tokens": int(enc.input_ids.shape[1]),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_avg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None, "python": platform.python_version(),
    }
    return results


def print_table(r: dict) -> None:
    m = r["meta"]
    print(f"model {m['model']} ({m['dtype']}, {m['device']}, {m['threads']} threads), prompt {m['prompt_tokens']} "
          f"tokens, {m['max_new_tokens']} new tokens, median of {m['repeats']}; load avg {m['load_avg_at_end']}")
    t = r["ttft"]
    print(f"\ntime to first token   plain {t['plain_s'] * 1000:7.1f} ms   studio {t['studio_s'] * 1000:7.1f} ms   "
          f"overhead {100 * (t['studio_s'] - t['plain_s']) / t['plain_s']:+5.1f} %   "
          f"(streamed first text {t['studio_stream_first_text_s'] * 1000:.1f} ms)")
    print(f"\n{'batch 1':<10} {'plain tok/s':>12} {'studio tok/s':>13} {'overhead':>9} {'paired':>8} {'best':>8} "
          f"{'studio code outside generate':>30}")
    for name, row in r["rows"].items():
        print(f"{name:<10} {row['plain_tok_s']:>12.1f} {row['studio_tok_s']:>13.1f} {row['overhead_pct']:>+8.1f}% "
              f"{row['overhead_paired_pct']:>+7.1f}% {row['overhead_best_pct']:>+7.1f}% "
              f"{row['studio_outside_generate_ms']:>17.1f} ms ({row['outside_pct']:.2f} %)")
    n4 = r["n4"]
    print(f"\nn=4 completions   sequential {n4['sequential_s']:.2f} s ({n4['sequential_tok_s']:.1f} tok/s)   "
          f"batched {n4['batched_s']:.2f} s ({n4['batched_tok_s']:.1f} tok/s)   speedup {n4['speedup']:.2f}x   "
          f"(plain batched {n4['plain_batched_s']:.2f} s, studio overhead {n4['overhead_pct']:+.1f} %)")
    worst = max(row["overhead_paired_pct"] for row in r["rows"].values())
    print(f"\ntargets: studio overhead < 5 % → worst paired {worst:+.1f} % {'OK' if worst < 5 else 'MISSED'}; "
          f"batched ≥ 2x → {n4['speedup']:.2f}x {'OK' if n4['speedup'] >= 2 else 'MISSED'}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="Model name, folder or hub id (default: the embedded model).")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="Timed runs per measurement; the median is reported.")
    p.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "int8"])
    p.add_argument("--out", default=None, help="Write the results as JSON here.")
    args = p.parse_args(argv)
    from backend.errors import StudioError

    try:
        results = run(args.model, args.max_new_tokens, args.repeats, args.precision)
    except StudioError as exc:
        raise SystemExit(f"error: {exc}") from None
    print_table(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
