"""The evaluation form: models or adapters, dataset split, template, decoding and scorers → one eval job per model.

Every model gets the same split, template and decoding (``evaluation.submit_comparison``), so the runs compare.
The RLHF preset fills in the held-out provocative prompts (no references) so base, SFT, PPO and DPO models compare
on toxicity, reward and length.
"""

import streamlit as st

from app.auth import current_user
from app.common import model_names, user_errors
from app.components.decoding_controls import decoding_controls, load_decoding
from app.components.submit_once import form_submission
from backend.db.engine import session_scope
from backend.generation.decoding import DecodingConfig
from backend.prompts.templates import SUMMARY_TEMPLATES
from jobs.registry import parse_spec
from jobs.specs import DEMO_DIALOGSUM, EvalSpec
from services import admin_actions, eval_scores, evaluation

KEY = "ev-dec"  # decoding widgets' key prefix
BARE_PROMPT = "{prompt}"  # a template that passes a prompt set's `prompt` column through unchanged
RLHF_PRESET = "RLHF before/after: held-out provocative prompts"


def _help(name: str) -> str:
    return EvalSpec.model_fields[name].description or ""


@st.cache_data(show_spinner=False, ttl=60)
def _splits(dataset: str) -> list[str]:
    return evaluation.dataset_splits(dataset)


def _rlhf_preset() -> None:
    """Held-out provocative prompts (the PPO demo's test split), no references, toxicity and the newest reward
    model; picks the newest PPO and DPO models with their start models when there are some."""
    from jobs.spec_files import list_presets, load_spec_file

    # the shipped preset (eval-rlhf-before-after.yaml) holds the sizes: 21 prompts × 16 draws, sampled as PPO
    # samples its rollouts (T = 1, no truncation) with a fixed seed — toxicity is rare, so one greedy answer per
    # prompt would hide most of what changed
    preset = load_spec_file(list_presets()["eval-rlhf-before-after"])
    state = st.session_state
    state.update({"ev-dataset": preset.dataset, "ev-split": preset.split, "ev-template": preset.template,
                  "ev-target": preset.target_field or "",
                  "ev-n": preset.max_examples, "ev-samples": preset.samples_per_example, "ev-ppl": False,
                  "ev-tox": "", "ev-tox-label": "", "ev-extra": ""})
    load_decoding(KEY, preset.decoding)
    rewards = model_names(reward=True)
    state["ev-reward"] = rewards[-1] if rewards else ""
    with session_scope() as s:
        suggested = [m for m in evaluation.rlhf_models(s) if m in model_names()]
    if suggested:
        state["ev-models"] = suggested


def eval_form() -> None:
    """Render the form; "Run evaluation" queues one job per chosen model."""
    st.button(RLHF_PRESET, key="ev-preset-rlhf", on_click=_rlhf_preset, icon=":material/balance:",
              help="Fill in the 21 held-out prompts of demo:provocative (test split, no references), the prompt "
              "as it is, toxicity and the reward model: then pick the base, SFT, PPO and DPO models to compare.")
    models = st.multiselect("Models and adapters", model_names(), key="ev-models", help=_help("model"),
                            placeholder="Choose the base model and the fine-tuned ones to compare")
    cols = st.columns([2, 1, 2, 1])
    dataset = cols[0].text_input("Dataset", DEMO_DIALOGSUM, key="ev-dataset", help=_help("dataset"))
    split = "test"
    with user_errors():
        splits = _splits(dataset.strip())
        split = cols[1].selectbox("Split", splits, splits.index("test") if "test" in splits else 0, key="ev-split",
                                  help=_help("split"))
    names = [*SUMMARY_TEMPLATES, BARE_PROMPT]
    template = cols[2].selectbox("Template", names, key="ev-template", help=_help("template"),
                                 format_func=lambda t: "{prompt} (the prompt as it is)" if t == BARE_PROMPT else t)
    target = cols[3].text_input("Reference column", "summary", key="ev-target", help=_help("target_field"),
                                placeholder="none")
    cols = st.columns(5)
    n = cols[0].number_input("Test examples", 1, 100_000, 40, step=5, key="ev-n",
                             help=_help("max_examples") + " More = steadier scores, longer run (~1 s each on CPU).")
    samples = cols[1].number_input("Samples per example", 1, 16, 1, key="ev-samples",
                                   help=_help("samples_per_example"))
    batch = cols[2].number_input("Batch size", 1, 256, 8, key="ev-batch", help=_help("batch_size"))
    precision = cols[3].selectbox("Precision", ["auto", "float32", "bfloat16", "int8"], key="ev-precision",
                                  help=_help("precision"))
    chat = cols[4].checkbox("Chat format", True, key="ev-chat", help=_help("chat_format"))
    with st.expander("Decoding (greedy by default, so scores are comparable; sampling for several samples)"):
        if f"{KEY}-method" not in st.session_state:
            st.session_state[f"{KEY}-preset"] = "deterministic"
            load_decoding(KEY, DecodingConfig(max_new_tokens=64))
        decoding = decoding_controls(KEY, compact=True)
    with st.expander("Scorers: reward model, perplexity, toxicity classifier, extra `evaluate` metrics"):
        reward = st.selectbox("Reward model", ["", *model_names(reward=True)], key="ev-reward",
                              format_func=lambda m: m or "none", help=_help("reward_model"))
        ppl = st.checkbox("Perplexity of the references", True, key="ev-ppl", help=_help("perplexity"))
        cols = st.columns(2)
        tox = cols[0].text_input("Toxicity model", "", key="ev-tox", placeholder="packaged profanity classifier",
                                 help=_help("toxicity_model"))
        label = cols[1].text_input("Toxic class name", "", key="ev-tox-label", placeholder="auto",
                                   help=_help("toxic_label"))
        extra = st.text_input("Extra metrics (comma-separated)", "", key="ev-extra", help=_help("extra_metrics"),
                              placeholder="e.g. exact_match, chrf")
    with st.expander("How many examples do I need?", icon=":material/calculate:"):
        sample_size_helper()
    if st.button("Run evaluation", type="primary", key="ev-submit"):
        with user_errors():
            if decoding is None:
                return  # decoding_controls already said what is wrong
            spec = parse_spec({"kind": "eval", "name": "eval", "model": models[0] if models else "", "dataset":
                               dataset.strip(), "split": split, "template": template, "target_field": target.strip(),
                               "reward_model": reward, "chat_format": chat,
                               "max_examples": int(n), "samples_per_example": int(samples),
                               "batch_size": int(batch), "precision": precision,
                               "decoding": decoding.model_dump(), "perplexity": ppl, "toxicity_model": tox,
                               "toxic_label": label, "extra_metrics": [m.strip() for m in extra.split(",") if m.strip()]})
            with form_submission("ev-submit", [spec, models]) as token, session_scope(write=True) as s:
                user = current_user()  # the service re-checks in the database that this user is an admin
                ids = admin_actions.submit_evaluations(s, user["id"] if user else 0, spec, models,
                                                       submission_token=token)  # a double-click: once
            st.success(f"Queued evaluation job(s) {', '.join(map(str, ids))}; results appear below when they "
                       "finish (progress on the Jobs page).")


def sample_size_helper() -> None:
    """A finished run as the pilot: how many prompts a paired comparison needs to detect a change of a given size
    (``eval_scores.prompts_needed``)."""
    with session_scope() as s:
        labels = {r["run"]: evaluation.run_label(r) for r in evaluation.eval_runs(s)}
    if not labels:
        st.caption("Run one evaluation first: its per-example scores are the pilot this estimate starts from.")
        return
    cols = st.columns([3, 2, 1, 1])
    run = cols[0].selectbox("Pilot run", list(labels), len(labels) - 1, key="ev-need-run", format_func=labels.get,
                            help="A finished evaluation of a model like the ones to compare, on similar prompts.")
    with session_scope() as s:
        metrics = eval_scores.per_example_metrics(s, run)
    if not metrics:
        st.caption("This run kept no per-example scores: pick another.")
        return
    first = next((m for m in ("rouge1", "toxicity", "reward") if m in metrics), metrics[0])
    metric = cols[1].selectbox("Metric", metrics, metrics.index(first), key="ev-need-metric")
    effect = cols[2].number_input("Change to detect", 0.0001, 1e6, 0.05, step=0.01, format="%.4f",
                                  key="ev-need-effect", help="The smallest absolute change in the mean worth seeing.")
    samples = cols[3].number_input("Samples per prompt", 1, 16, 1, key="ev-need-samples")
    with user_errors():
        with session_scope() as s:
            need = eval_scores.prompts_needed(s, run, metric, float(effect), int(samples))
        st.markdown(f"**{need['prompts']:,} prompts** × {need['samples_per_prompt']} = "
                    f"{need['completions']:,} completions per model.")
        st.caption(need["explanation"])
