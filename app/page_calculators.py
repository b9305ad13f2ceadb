"""Planning calculators: GPU memory to load and to train, compute-optimal data, LoRA size, compute budget."""

import pandas as pd
import plotly.express as px
import streamlit as st

from backend import calculators as calc
from backend.db.engine import session_scope

SIZES = {"135M (SmolLM2)": 135e6, "1B": 1e9, "7B": 7e9, "13B": 13e9, "70B": 70e9, "175B (GPT-3)": 175e9}
SPAN = calc.log_space(1e8, 2e11, 24)  # 100M → 200B parameters, the x axis of the charts

st.title(":material/calculate: Calculators")
st.caption("Rules of thumb for planning a fine-tuning or pre-training run (GB = 10⁹ bytes).")


def params_input(key: str) -> float:
    cols = st.columns([2, 1])
    size = cols[0].radio("Model size", [*SIZES, "Custom"], index=1, horizontal=True, key=f"{key}-size")
    custom = cols[1].number_input("Custom size (billions of parameters)", 0.001, 10_000.0, 3.0, key=f"{key}-custom",
                                  disabled=size != "Custom")
    return SIZES.get(size, custom * 1e9)


def log_chart(frame: pd.DataFrame, x: str, y: str, color: str | None, title: str, labels: dict, key: str,
              mark: tuple[float, float] | None = None) -> None:
    fig = px.line(frame, x=x, y=y, color=color, log_x=True, log_y=True, title=title, labels=labels)
    if mark is not None:
        fig.add_scatter(x=[mark[0]], y=[mark[1]], mode="markers", marker={"size": 12, "symbol": "x"},
                        name="your model")
    st.plotly_chart(fig, width="stretch", key=key)


METHODS = {"Full fine-tuning": None, "LoRA": None, "QLoRA 8-bit": "8bit", "QLoRA 4-bit": "4bit"}


def finetune_plan(params: float) -> None:
    """One job's peak memory by method, batch and length, against what the live workers offer."""
    st.subheader("One fine-tuning job", divider="gray")
    cols = st.columns(4)
    method = cols[0].selectbox("Method", list(METHODS), index=1, key="plan-method")
    precision = cols[1].radio("Compute precision", ["bf16", "fp32"], horizontal=True, key="plan-precision",
                              disabled=METHODS[method] is not None, help="QLoRA computes in bf16.")
    batch = cols[2].number_input("Batch size per GPU", 1, 1024, 4, key="plan-batch")
    seq_len = cols[3].number_input("Sequence length (tokens)", 16, 131_072, 512, key="plan-seq")
    cols = st.columns(4)
    r = cols[0].number_input("LoRA rank r", 1, 1024, 16, key="plan-r", disabled=method == "Full fine-tuning")
    checkpointing = cols[1].toggle("Gradient checkpointing", key="plan-ckpt",
                                   help="Keep only each layer's input; recompute the rest in the backward pass.")
    hidden, layers, vocab = calc.model_shape(params)
    cols[2].caption(f"Assumed shape: hidden {hidden:,}, {layers} layers, vocabulary {vocab:,} (the nearest "
                    "well-known model of this size).")
    plan = calc.finetune_memory(params, calc.lora_trainable(hidden, layers, int(r)), hidden, layers, vocab,
                                weights=METHODS[method] or precision, full=method == "Full fine-tuning",
                                batch_size=int(batch), seq_len=int(seq_len), checkpointing=checkpointing)
    total = plan.pop("total_gb")
    names = {"weights_gb": "frozen weights", "trainable_state_gb": "trained weights + gradients + Adam",
             "activations_gb": "activations", "logits_gb": "logits", "runtime_gb": "CUDA runtime"}
    frame = pd.DataFrame({"part": [names[k] for k in plan], "GB": list(plan.values())})
    left, right = st.columns([1, 2])
    left.metric("Estimated peak per GPU", f"{total:,.1f} GB")
    from services.workers import memory_on_offer, memory_warning  # the page's one database read

    with session_scope() as s:
        on_offer = memory_on_offer(s)
    if (warning := memory_warning(total, "cuda", on_offer)) is not None:
        left.warning(warning, icon=":material/memory:")
    else:
        left.success(f"Fits the largest GPU of a live worker ({on_offer['gpu_gb']:,.1f} GB).")
    right.plotly_chart(px.bar(frame, x="GB", y="part", orientation="h", title="Where the memory goes"),
                       width="stretch", key="plan-chart")
    st.caption("Frozen weights: 4/2/1/0.52 bytes per parameter (fp32/bf16/8-bit/4-bit NF4 with double-quantized "
               "scales); trained weights keep 4 copies (weights, gradients, two Adam moments; LoRA adapters in fp32); "
               "activations ~34·hidden bytes per token and layer in 16-bit (2·hidden kept with checkpointing); "
               "logits 8 bytes per token and vocabulary entry. An estimate within ~20 %, not a measurement.")


memory, tokens, lora, compute, formats = st.tabs(["GPU memory", "Compute-optimal data", "LoRA parameters",
                                                  "Compute budget", "Number formats"])

with memory:
    params = params_input("mem")
    precision = st.radio("Precision", ["fp32", "bf16", "int8"], horizontal=True, key="mem-precision",
                         help="Bytes per parameter: fp32 4, bf16/fp16 2, int8 1.")
    est = calc.memory_estimate(params, precision)
    cols = st.columns(2)
    cols[0].metric("To load (weights only)", f"{est['load_gb']:,.2f} GB", f"{est['load_bytes_per_param']:g} bytes/param",
                   delta_color="off", delta_arrow="off")
    cols[1].metric("To train (weights + gradients + Adam + activations)", f"{est['train_gb']:,.2f} GB",
                   f"{est['train_bytes_per_param']:g} bytes/param", delta_color="off",
                   delta_arrow="off")
    series = pd.DataFrame(calc.memory_series(SPAN)).melt(id_vars=["params", "precision"],
                                                          value_vars=["load_gb", "train_gb"], var_name="need")
    series["line"] = series["need"].map({"load_gb": "load", "train_gb": "train"}) + " · " + series["precision"]
    log_chart(series, "params", "value", "line", "Memory by model size", {"value": "GB", "params": "parameters",
              "line": ""}, "mem-chart", (params, est["train_gb"]))
    st.caption("Training in fp32 ≈ 4 bytes of weights + ~20 bytes per parameter (2 Adam states 8, gradients 4, "
               "activations and buffers ~8): 1B parameters → ~24 GB. LoRA trains a small share of the parameters, so "
               "gradients and optimizer states shrink with it.")
    finetune_plan(params)

with tokens:
    params = params_input("tok")
    optimal = calc.compute_optimal_tokens(params)
    st.metric("Compute-optimal training tokens (~20 per parameter)", f"{optimal:,.3g}")
    log_chart(pd.DataFrame(calc.chinchilla_series(SPAN)), "params", "tokens", None,
              "Chinchilla: training tokens for a compute-optimal model", {"params": "parameters"}, "tok-chart",
              (params, optimal))

with lora:
    cols = st.columns(3)
    d = cols[0].number_input("d (rows of the weight)", 1, 100_000, 512, key="lora-d")
    k = cols[1].number_input("k (columns)", 1, 100_000, 64, key="lora-k")
    r = cols[2].number_input("rank r", 1, 4096, 8, key="lora-r")
    if r > min(d, k):
        st.warning(f"A rank above min(d, k) = {min(d, k)} adds parameters without adding expressiveness.")
    r_chosen = int(r)
    result = calc.lora_parameters(int(d), int(k), r_chosen)
    cols = st.columns(3)
    cols[0].metric("Full weight d·k", f"{result['full']:,}")
    cols[1].metric("LoRA r·(d+k)", f"{result['lora']:,}", f"A {result['a']:,} + B {result['b']:,}",
                   delta_color="off", delta_arrow="off")
    cols[2].metric("Fewer trainable parameters", f"{100 * result['reduction']:.2f} %")
    ranks = pd.DataFrame(calc.lora_rank_series(int(d), int(k), (1, 2, 4, 8, 16, 32, 64, 128, 256)))
    if not ranks.empty:
        ranks["rank"] = ranks["rank"].astype(str)
        ranks["which"] = ["your rank" if r == str(r_chosen) else "other ranks" for r in ranks["rank"]]
        fig = px.bar(ranks, x="rank", y="lora", color="which", text_auto=",", log_y=True,
                     title="LoRA parameters by rank", labels={"lora": "trainable parameters", "which": ""})
        # A trace, not add_hline's annotation: annotations on a log axis take log10 coordinates.
        fig.add_scatter(x=list(ranks["rank"]), y=[result["full"]] * len(ranks), mode="lines",
                        line={"dash": "dash", "color": "black"}, name=f"full weight: {result['full']:,}")
        st.plotly_chart(fig, width="stretch", key="lora-chart")

with compute:
    params = params_input("cmp")
    tokens_b = st.number_input("Training tokens (billions; 0 = compute-optimal)", 0.0, 1e6, 0.0, key="cmp-tokens")
    budget = calc.compute_budget(params, tokens_b * 1e9 or None)
    cols = st.columns(4)
    cols[0].metric("Training FLOPs (6·N·D)", f"{budget['flops']:.3g}")
    cols[1].metric("petaFLOP/s-days", f"{budget['pf_days']:,.3g}")
    cols[2].metric("V100-days", f"{budget['V100_gpu_days']:,.3g}")
    cols[3].metric("A100-days", f"{budget['A100_gpu_days']:,.3g}")
    frame = pd.DataFrame(calc.compute_series(SPAN))
    fig = px.line(frame, x="params", y="pf_days", log_x=True, log_y=True, labels={"params": "parameters", "pf_days":
                  "petaFLOP/s-days"}, title="Compute of a compute-optimal run (20 tokens/parameter)")
    for name, pf_days in calc.REFERENCE_COMPUTE.items():  # traces: annotations on a log axis take log10 values
        fig.add_scatter(x=[SPAN[0], SPAN[-1]], y=[pf_days, pf_days], mode="lines", line={"dash": "dot"},
                        name=f"{name}: {pf_days:,} PF/s-days")
    fig.add_scatter(x=[params], y=[budget["pf_days"]], mode="markers", marker={"size": 12, "symbol": "x"},
                    name="your run")
    st.plotly_chart(fig, width="stretch", key="cmp-chart")
    st.caption("1 petaFLOP/s-day = 10¹⁵ FLOP/s for 24 h = 8.64×10¹⁹ FLOPs ≈ 8 V100 or 2 A100 running flat out.")

with formats:
    st.dataframe(pd.DataFrame(calc.DTYPES), hide_index=True)
    value = st.number_input("A number to store", value=3.14159265, format="%.8f", key="fmt-value")
    st.dataframe(pd.DataFrame([{"dtype": d["dtype"], "stored as": calc.stored_value(value, d["dtype"])}
                               for d in calc.DTYPES]), hide_index=True)
    st.caption("bf16 keeps fp32's range with fewer fraction bits (π → 3.140625); fp16 the reverse; int8 here is plain "
               "rounding and clipping (real quantization adds a scale per tensor or channel).")

