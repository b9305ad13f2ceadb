"""The SFT job form: method (full / LoRA / prompt tuning), data, training controls, resume, and before launch
the trainable-parameter estimate, a preview of formatted examples and the resolved YAML spec."""

from typing import Any

import streamlit as st

from app.common import user_errors
from app.components.spec_form import spec_form
from app.components.submit_once import queue_once
from app.components.training_data import data_controls, preview
from backend.db.engine import session_scope
from backend.settings import get_settings
from jobs.registry import parse_spec
from jobs.spec_files import list_presets, load_spec_file, spec_to_yaml
from jobs.specs import LoraArgs, PromptTuningArgs, SFTSpec

METHODS = {"LoRA": "lora", "Prompt tuning": "prompt_tuning", "Full fine-tuning": "none"}
FRESH = "Start fresh"


@st.cache_data(show_spinner="Reading the model's layers…", max_entries=32)
def _lora_choices(model: str, url: str) -> list[str]:
    from services.training import lora_target_choices

    with session_scope(url=url) as s:
        return lora_target_choices(s, model)


@st.cache_data(show_spinner="Counting trainable parameters…", max_entries=64)
def _estimate(spec_json: str, url: str) -> dict[str, Any]:
    from services.training import estimate_trainable

    with session_scope(url=url) as s:
        return estimate_trainable(s, SFTSpec.model_validate_json(spec_json))


@st.cache_data(show_spinner="Estimating memory…", max_entries=64, ttl=30)  # ttl: workers come and go
def _memory(spec_json: str, url: str) -> dict[str, Any]:
    from services.training import memory_plan

    with session_scope(url=url) as s:
        return memory_plan(s, SFTSpec.model_validate_json(spec_json))


def _bases() -> list[str]:
    """Models SFT can start from (adapters cannot), the configured default first."""
    from backend.models.store import list_models

    with session_scope() as s:
        names = [m["name"] for m in list_models(s) if m["kind"] != "adapter"]
    return sorted(names, key=lambda name: name != get_settings().default_model)


def _method_controls(values: dict[str, Any], d: SFTSpec, key: str) -> None:
    if values["peft"] == "lora":
        fields, lora = LoraArgs.model_fields, d.lora
        cols = st.columns(3)
        r = cols[0].number_input("Rank r", 1, 512, lora.r, key=f"{key}-r", help=fields["r"].description)
        alpha = cols[1].number_input("Alpha", 1, 1024, lora.alpha, key=f"{key}-alpha", help=fields["alpha"].description)
        dropout = cols[2].number_input("Dropout", 0.0, 0.99, lora.dropout, 0.01, key=f"{key}-dropout",
                                       help=fields["dropout"].description)
        with user_errors():
            choices = _lora_choices(values["base_model"], get_settings().url) + ["all-linear"]
            targets = st.multiselect("Target modules", choices, [t for t in lora.target_modules if t in choices],
                                     key=f"{key}-targets-{values['base_model']}",
                                     help=fields["target_modules"].description + " The list is the model's own "
                                     "adaptable layers.")
            values["lora"] = {"r": r, "alpha": alpha, "dropout": dropout, "target_modules": targets}
    elif values["peft"] == "prompt_tuning":
        fields, pt = PromptTuningArgs.model_fields, d.prompt_tuning
        cols = st.columns([1, 1, 2])
        tokens = cols[0].slider("Virtual tokens", 20, 100, min(100, max(20, pt.num_virtual_tokens)),
                                key=f"{key}-vtokens", help=fields["num_virtual_tokens"].description)
        init = cols[1].radio("Initialise from", ["text", "random"], 0 if pt.init == "text" else 1,
                             key=f"{key}-init", help=fields["init"].description)
        text = cols[2].text_input("Init text", pt.init_text, key=f"{key}-init-text", disabled=init != "text",
                                  help=fields["init_text"].description)
        values["prompt_tuning"] = {"num_virtual_tokens": tokens, "init": init, "init_text": text}
    else:
        st.caption("Full fine-tuning trains every weight: use a learning rate around 1e-5–5e-5; each step and "
                   "checkpoint costs far more memory than LoRA (weights + gradients + Adam states).")


def _memory_controls(values: dict[str, Any], d: SFTSpec, key: str) -> None:
    """QLoRA, gradient checkpointing and the device: what decides whether the job fits a worker's memory."""
    fields = SFTSpec.model_fields
    cols = st.columns(3)
    values["quantization"] = cols[0].radio(
        "Quantize the frozen base (QLoRA)", ["none", "8bit", "4bit"], ["none", "8bit", "4bit"].index(d.quantization),
        key=f"{key}-quant", horizontal=True, help=fields["quantization"].description) if values["peft"] == "lora" else "none"
    values["gradient_checkpointing"] = cols[1].radio(
        "Gradient checkpointing", ["auto", "on", "off"], ["auto", "on", "off"].index(d.gradient_checkpointing),
        key=f"{key}-ckpt", horizontal=True, help=fields["gradient_checkpointing"].description)
    devices = cols[2].radio("Run on", ["auto", "cpu", "cuda"], ["auto", "cpu", "cuda"].index(d.resources.devices),
                            key=f"{key}-devices", horizontal=True,
                            help=type(d.resources).model_fields["devices"].description)
    values["resources"] = {**values["resources"], "devices": devices,
                           "gpus": values["resources"]["gpus"] if devices != "cpu" else 0}


def _memory_summary(spec: SFTSpec) -> None:
    plan = _memory(spec.model_dump_json(include={"base_model", "peft", "lora", "prompt_tuning", "train",
                                                 "quantization", "gradient_checkpointing", "resources"}),
                   get_settings().url)
    parts = plan["parts"]
    where = "per GPU" if plan["device"] == "cuda" else "of RAM"
    st.caption(f"Estimated peak memory {where}: **{plan['total_gb']:,.1f} GB** — weights "
               f"{parts['weights_gb']:,.2f} ({plan['weights']}), trained weights + gradients + Adam "
               f"{parts['trainable_state_gb']:,.2f}, activations {parts['activations_gb']:,.2f} (checkpointing "
               f"{'on' if plan['checkpointing'] else 'off'}), logits {parts['logits_gb']:,.2f}"
               + (f", CUDA runtime {parts['runtime_gb']:g}" if parts["runtime_gb"] else "")
               + ". An estimate within ~20 %; the Calculators page shows how it is made.")
    if plan["warning"]:
        st.warning(plan["warning"], icon=":material/memory:")


def _resume_picker(values: dict[str, Any], key: str) -> None:
    from services.training import resumable_jobs

    with session_scope() as s:
        jobs = {f"#{j['job']} {j['name']} ({j['status']}, {j['checkpoint']})": j["job"] for j in resumable_jobs(s)}
    picked = st.selectbox("Resume from", [FRESH, *jobs], key=f"{key}-resume", help=SFTSpec.model_fields[
        "resume_from_job"].description + " Listed: failed or cancelled SFT jobs that left a checkpoint.")
    values["resume_from_job"] = jobs.get(picked)


def _launch_summary(spec: SFTSpec) -> None:
    # Only the model and the method decide the count: editing the learning rate or the name reuses the cache.
    est = _estimate(spec.model_dump_json(include={"base_model", "peft", "lora", "prompt_tuning"}), get_settings().url)
    cols = st.columns(3)
    cols[0].metric("Trainable parameters", f"{est['trainable']:,}")
    cols[1].metric("Share of the model", f"{100 * est['share']:.3g} %")
    cols[2].metric("Total parameters", f"{est['total']:,}")
    t = spec.train
    steps = f"{t.max_steps} steps" if t.max_steps > 0 else f"{t.epochs:g} epoch(s)"
    st.caption(f"{steps} × effective batch {t.batch_size * t.grad_accum} ({t.batch_size} × {t.grad_accum} "
               f"accumulated), peak learning rate {t.learning_rate:g} ({t.lr_scheduler}).")


def sft_job_form() -> None:
    """Render the form; on "Queue job" submit it and select the new job in the list below."""
    presets = {n: p for n, p in list_presets().items() if n.startswith("sft")}
    preset = st.selectbox("Start from preset", list(presets), key="jobs-preset")
    d: SFTSpec = load_spec_file(presets[preset])
    key = f"sft-{preset}"
    values = d.model_dump(mode="json")
    cols = st.columns(3)
    values["name"] = cols[0].text_input("Job name", d.name, key=f"{key}-name",
                                        help=SFTSpec.model_fields["name"].description)
    bases = _bases()
    values["base_model"] = cols[1].selectbox("Base model", bases, key=f"{key}-base",
                                             help=SFTSpec.model_fields["base_model"].description)
    method = cols[2].radio("Method", list(METHODS), list(METHODS.values()).index(d.peft), key=f"{key}-method",
                           horizontal=True, help=SFTSpec.model_fields["peft"].description)
    values["peft"] = METHODS[method]
    _method_controls(values, d, key)
    data_controls(values, d, key)
    with st.expander("Training controls: steps, learning rate and schedule, batch, precision, evaluation, "
                     "checkpoints, early stopping"):
        train = spec_form(type(d.train), d.train, f"{key}-train", hidden=("max_length",), columns=4)
        values["train"] = {**train, "max_length": values["train"]["max_length"]}
        _resume_picker(values, key)
    with st.expander("Memory and hardware: QLoRA, gradient checkpointing, CPU or GPU"):
        _memory_controls(values, d, key)
    with user_errors():
        spec = parse_spec(values)
        _launch_summary(spec)
        _memory_summary(spec)
        preview(spec, key)
        with st.expander("Resolved spec (the same YAML works with `studio job submit`)"):
            st.code(spec_to_yaml(spec), language="yaml")
        if st.button("Queue job", type="primary", key="jobs-submit"):
            job_id = queue_once("jobs-submit", spec)  # a double-click queues one job
            st.session_state["jobs-pick"] = job_id  # the job list below is not drawn yet in this run
            st.success(f"Queued job {job_id}.")
