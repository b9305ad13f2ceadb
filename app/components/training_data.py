"""The SFT form's data part: where the rows come from, how each becomes a prompt, and a preview of the result."""

from typing import Any

import pandas as pd
import streamlit as st

from backend.prompts.templates import SUMMARY_TEMPLATES
from jobs.specs import DEMO_DIALOGSUM, SFTSpec

SOURCES = ["Demo dialogue summaries", "Upload a file", "Hub dataset or path"]
CUSTOM = "Custom text…"
FLAN = [name for name in SUMMARY_TEMPLATES if name.startswith("flan-")]
LONG_EXAMPLES = ["truncate", "skip", "refuse"]


def _help(name: str) -> str:
    return SFTSpec.model_fields[name].description or ""


def _uploaded_path(key: str) -> str | None:
    """A new upload (saved under the data dir) or one uploaded before."""
    from services.training import save_upload, uploaded_datasets

    upload = st.file_uploader("Dataset file (JSONL, CSV or Parquet, UTF-8)", type=["jsonl", "json", "csv", "parquet"],
                              key=f"{key}-upload", help="One example per row, with the template's fields "
                              "(e.g. dialogue) and the target column (e.g. summary). Saved under the data dir.")
    if upload is not None:
        return str(save_upload(upload.name, upload.getvalue()))
    earlier = uploaded_datasets()
    if not earlier:
        return None
    return st.selectbox("…or a file uploaded before", earlier, key=f"{key}-earlier")


def data_controls(values: dict[str, Any], d: SFTSpec, key: str) -> None:
    """Widgets for the dataset, template(s), columns, validation and length; writes them into ``values``."""
    st.markdown("**Data**")
    source_default = 0 if d.dataset == DEMO_DIALOGSUM else 2
    source = st.radio("Data source", SOURCES, index=source_default, key=f"{key}-source", horizontal=True,
                      help=_help("dataset"))
    if source == SOURCES[0]:
        values["dataset"] = DEMO_DIALOGSUM
        st.caption("1,500 generated dialogue–summary pairs (train/validation/test), columns `dialogue`, `summary`.")
    elif source == SOURCES[1]:
        values["dataset"] = _uploaded_path(key) or ""
    else:
        values["dataset"] = st.text_input("Dataset", d.dataset if source_default == 2 else "", key=f"{key}-ref",
                                          placeholder="hub:org/name, or /path/to/file.jsonl or folder")
    cols = st.columns(3)
    names = list(SUMMARY_TEMPLATES)
    chosen = cols[0].selectbox("Template", [*names, CUSTOM], key=f"{key}-template", help=_help("template"),
                               index=names.index(d.template) if d.template in names else len(names))
    if chosen == CUSTOM:
        values["template"] = st.text_area("Template text ({field} slots from the data)", d.template
                                          if d.template not in names else "", key=f"{key}-template-text")
    else:
        values["template"] = chosen
        st.caption("Template: " + SUMMARY_TEMPLATES[chosen].replace("\n", " ⏎ "))
    mix = cols[1].toggle("Mix phrasings per example", bool(d.template_mix), key=f"{key}-mix", help=_help("template_mix"))
    values["template_mix"] = st.multiselect("Phrasings to mix", names, [t for t in d.template_mix if t in names]
                                            or FLAN, key=f"{key}-mix-names") if mix else []
    values["target_field"] = cols[2].text_input("Target column", d.target_field, key=f"{key}-target",
                                                help=_help("target_field"))
    cols = st.columns(4)
    values["validation_share"] = cols[0].slider("Validation share", 0.0, 0.5, d.validation_share, 0.05,
                                                key=f"{key}-val", help=_help("validation_share"))
    values["train"]["max_length"] = cols[1].number_input("Max length (tokens)", 16, 32768, d.train.max_length,
                                                         key=f"{key}-maxlen", help=type(d.train).model_fields[
                                                             "max_length"].description)
    values["long_examples"] = cols[2].selectbox("Longer examples", LONG_EXAMPLES, LONG_EXAMPLES.index(d.long_examples),
                                                key=f"{key}-long", help=_help("long_examples"))
    values["chat_format"] = cols[3].checkbox("Chat format", d.chat_format, key=f"{key}-chat", help=_help("chat_format"))
    cols = st.columns(2)
    values["max_train_examples"] = cols[0].number_input("Max training rows (0 = all)", 0, None, d.max_train_examples,
                                                        key=f"{key}-ntrain", help=_help("max_train_examples"))
    values["max_eval_examples"] = cols[1].number_input("Max validation rows", 0, None, d.max_eval_examples,
                                                       key=f"{key}-neval", help=_help("max_eval_examples"))


def preview(spec: SFTSpec, key: str, n: int = 3) -> None:
    """The first rows exactly as the job formats them (chat template applied), with token counts."""
    from backend.db.engine import session_scope
    from services.training import preview_examples

    if not st.toggle("Preview formatted examples", key=f"{key}-preview",
                     help="Reads the first rows and formats them with the template and the model's chat template."):
        return
    with session_scope() as s:
        rows = preview_examples(s, spec, n)
    table = pd.DataFrame(rows)[["index", "template", "prompt_tokens", "tokens", "if_too_long"]]
    st.dataframe(table, hide_index=True, width="stretch")
    for row in rows:
        with st.container(border=True):
            st.caption(f"Example {row['index'] + 1} · {row['template']} · {row['tokens']} tokens — the prompt "
                       "(no loss) then the completion (the loss is on it only)")
            st.code(row["prompt"], language="text", wrap_lines=True)
            st.code(row["completion"], language="text", wrap_lines=True)
