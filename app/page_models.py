"""Models & adapters: every registered model with its lineage (base, data, spec); merge a LoRA adapter into
its base and export it as a standalone folder; export a model as one GGUF file (llama.cpp, Ollama); add a local
model folder or hub id."""

from pathlib import Path

import pandas as pd
import streamlit as st

from app.common import user_errors
from backend.db.engine import session_scope
from backend.models.store import add_model, list_models
from jobs.registry import parse_spec
from jobs.spec_files import spec_to_yaml
from services import model_export, training

st.title(":material/deployed_code: Models & adapters")
st.caption("Trained models and adapters are registered by their jobs with where they came from; every model here "
           "appears in the Playground, Labeling and Evaluation pickers.")

with session_scope() as s:
    models = list_models(s)
st.dataframe(pd.DataFrame(models).drop(columns=["path"]), hide_index=True, width="stretch",
             height=min(36 * (len(models) + 1) + 2, 320))

names = [m["name"] for m in models]
if st.session_state.get("models-pick") not in names:
    st.session_state.pop("models-pick", None)
name = st.selectbox("Model", names, key="models-pick", index=len(names) - 1 if names else None)


def lineage_panel(name: str) -> None:
    with session_scope() as s:
        info = training.model_lineage(s, name)
    cols = st.columns(4)
    cols[0].metric("Kind", info["kind"])
    cols[1].metric("Method", info["method"] or ("pretrained" if info["kind"] == "base" else "–"))
    if info["trainable_params"] and info["total_params"]:
        share = 100 * info["trainable_params"] / info["total_params"]
        cols[2].metric("Trained parameters", f"{info['trainable_params']:,}", f"{share:.3g} % of all",
                       delta_color="off", delta_arrow="off")
    if info["train_runtime"]:
        cols[3].metric("Training time", f"{info['train_runtime']:,.0f} s")
    facts = {"base model": info["base"], "training data": info["dataset"], "training job": info["job_id"],
             "merged from": info["merged_from"], "source": info["source"], "folder": info["path"]}
    st.markdown("\n".join(f"- **{k}**: `{v}`" for k, v in facts.items() if v not in (None, "")))
    if info["spec"]:
        with st.expander("Training spec (the YAML `studio job submit` takes)"), user_errors():
            st.code(spec_to_yaml(parse_spec(info["spec"])), language="yaml")
    if info["kind"] == "adapter" and info["method"] != "prompt_tuning":
        merge_form(name)
    if info["kind"] != "reward" and info["method"] != "prompt_tuning":
        gguf_form(name, info["kind"] == "adapter")


def merge_form(name: str) -> None:
    with st.form(f"merge-{name}"):
        st.markdown("**Merge into the base and export** — one standalone model folder (loads without peft, "
                    "no adapter overhead at inference), registered as a new full model.")
        out = st.text_input("New model name", f"{name}-merged", key=f"merge-name-{name}")
        folder = st.text_input("Export folder (empty = the data dir's models/<name>)", "", key=f"merge-dir-{name}")
        if st.form_submit_button("Merge and export", type="primary"):
            with user_errors(), st.spinner("Loading the base, merging, saving…"):
                with session_scope(write=True) as s:
                    record = training.merge_adapter(s, name, out.strip(), folder.strip() or None)
                    path = record.path
                st.success(f"Merged into **{out.strip()}**, saved at `{path}`.")


def gguf_form(name: str, adapter: bool) -> None:
    with st.form(f"gguf-{name}"):
        st.markdown("**Export as GGUF** — one file that llama.cpp, Ollama and LM Studio load"
                    + (" (the adapter is merged into its base first)." if adapter else "."))
        dtype = st.radio("Weights", model_export.GGUF_DTYPES, horizontal=True, key=f"gguf-dtype-{name}",
                         help="f16: half of fp32, no visible loss. q8_0: 8-bit blocks, about half of f16, "
                              "near-identical outputs. f32: full precision, largest.")
        if st.form_submit_button("Export as GGUF"):
            with user_errors(), st.spinner("Writing the GGUF file…"), session_scope() as s:
                st.session_state[f"gguf-result-{name}"] = model_export.export_model_gguf(s, name, dtype=dtype)
    result = st.session_state.get(f"gguf-result-{name}")
    if result and Path(result["path"]).is_file():
        st.success(f"Wrote `{result['path']}` ({result['bytes'] / 1e6:,.1f} MB, {result['dtype']}).")
        st.download_button("Download the GGUF file", Path(result["path"]).read_bytes, key=f"gguf-download-{name}",
                           file_name=Path(result["path"]).name, mime="application/octet-stream",
                           icon=":material/download:")


if name:
    lineage_panel(name)

with st.expander("Add a model (local folder or hub id)", icon=":material/add:"), st.form("models-add"):
    ref = st.text_input("Folder or hub id", key="models-ref", placeholder="/path/to/model or org/name")
    alias = st.text_input("Name (optional)", key="models-alias")
    if st.form_submit_button("Add"):
        with user_errors(), session_scope(write=True) as s:
            added = add_model(s, ref.strip(), alias.strip() or None).name
            st.success(f"Registered {added}.")
