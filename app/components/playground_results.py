"""Show a saved run's columns (completions, speed, citations, final answers) and offer its follow-ups.

Used by the Playground (one column), Compare (2–4 side by side) and Runs pages; a run is the dict that
``services.runs.get_run`` returns.
"""

from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from app.common import user_errors
from app.components.safe_text import escape_markdown, safe_markdown
from backend.db.engine import session_scope


def column_metrics(col: dict[str, Any], *, compact: bool = False) -> None:
    """Speed and size of one column: tokens/s, time to first token, tokens in → out, latency or finish."""
    first = col["completions"][0] if col["completions"] else {}
    ttft = f"{col['first_token_s']:.2f} s" if col.get("first_token_s") is not None else "—"
    cells = st.columns(2 if compact else 4)
    values = [("Tokens/s", f"{col['tokens_per_second']:.1f}"), ("Time to first token", ttft),
              ("Tokens", f"{col['prompt_tokens']} → {col['completion_tokens']:g}"),
              ("Finish", first.get("finish_reason", "—"))]
    if compact:
        values = [values[0], ("Latency", f"{col['latency_s']:.2f} s"), values[2], ("Words", f"{col['words']:g}")]
    for i, (label, value) in enumerate(values):
        cells[i % len(cells)].metric(label, value)


def citations(col: dict[str, Any]) -> None:
    """The retrieved chunks an answer was given, numbered as in the prompt's context."""
    if not col.get("citations"):
        return
    st.markdown("**Sources**")
    for i, hit in enumerate(col["citations"], 1):
        with st.expander(f"[{i}] {escape_markdown(hit['citation'])} · similarity {hit['score']:.2f}"):
            st.text(hit["snippet"])


def _score_note(col: dict[str, Any], done: dict[str, Any]) -> str:
    """The reward after a scored completion's caption (" · reward 0.912"), and the best-of-n mark on the best."""
    if done.get("score") is None:
        return ""
    best = f" · :material/star: **best of {len(col['completions'])} by {col['reward']['source']}**" \
        if done.get("best") else ""
    return f" · reward {done['score']:.3f}{best}"


def completions(col: dict[str, Any], *, show_text: bool = True) -> None:
    """Each completion (scored runs: with its reward; best-of-n runs: best first), and any final answer."""
    many = len(col["completions"]) > 1
    if reward := col.get("reward"):
        order = "best first" if reward["best_of_n"] and many else "in generation order"
        st.caption(f":material/workspace_premium: Scored with {reward['source']}, {order}.")
    for n, done in enumerate(col["completions"], 1):
        head = f"Completion {done.get('n', n)} · {done['completion_tokens']} tokens · {done['finish_reason']}" \
            f"{_score_note(col, done)}" if many else (f"Reward {done['score']:.3f}" if done.get("score") is not None else "")
        if show_text:
            with st.container(border=True):
                if head:
                    st.caption(head)
                st.markdown(safe_markdown(done["text"]) if done["text"].strip() else "_(only whitespace, or empty: the model ended "
                            "at once)_")
        elif done.get("score") is not None:  # the text was streamed above: only its score
            st.caption(head)
        if done.get("answer"):
            st.success(f"Final answer: **{escape_markdown(done['answer'])}**", icon=":material/check:")


def show_column(col: dict[str, Any], *, show_text: bool = True, compact: bool = False) -> None:
    """One variant's output: text, final answer (chain-of-thought), metrics, notes and sources."""
    completions(col, show_text=show_text)
    column_metrics(col, compact=compact)
    citations(col)
    for note in col.get("notes", []):
        st.caption(f":material/info: {note}")
    with st.expander("Prompt as the model read it"):
        st.code(col["prompt"], language=None, wrap_lines=True)


def show_run(run: dict[str, Any]) -> None:
    """Every column of a run side by side (one column: full width)."""
    cols = st.columns(len(run["columns"])) if len(run["columns"]) > 1 else [st.container()]
    for box, col in zip(cols, run["columns"], strict=True):
        with box:
            if len(run["columns"]) > 1:
                st.markdown(f"**{col['label']}**")
            show_column(col, compact=len(run["columns"]) > 2)


def send_to_labeling(run: dict[str, Any], key: str) -> None:
    """A form that turns the run into a labeling campaign (the prompt, with the chosen variants as sources)."""
    from services.campaigns_from_runs import send_run_to_campaign

    labels = [c["label"] for c in run["columns"]]
    with st.form(f"{key}-send"):
        st.markdown("**Send to a labeling campaign**")
        st.caption("The run's prompt becomes an item; its completions, from the variants you pick, are what "
                   "annotators rank. The variants are the campaign's sources.")
        name = st.text_input("Campaign name", f"playground run {run['id']}", key=f"{key}-camp-name")
        chosen = st.multiselect("Variants", labels, default=labels, key=f"{key}-camp-cols")
        c1, c2 = st.columns(2)
        criterion = c1.selectbox("Criterion", ["helpfulness", "harmlessness", "honesty"], key=f"{key}-camp-crit")
        overlap = c2.number_input("Annotators per item", 1, 20, 1, key=f"{key}-camp-overlap")
        if st.form_submit_button("Create campaign", icon=":material/low_priority:"):
            with user_errors(), session_scope(write=True) as s:
                made = send_run_to_campaign(s, run["id"], name, columns=chosen, criterion=criterion,
                                            overlap=int(overlap))
                st.success(f"Campaign **{made['name']}** created: {made['items']} prompt, K = {made['k']} "
                           f"completions from {', '.join(made['sources'])}. Annotators find it on the Labeling page.")


def reopen_in_playground(run: dict[str, Any], column: int = 0) -> None:
    """Hand one variant of a saved run to the Playground page (it loads the settings before drawing its widgets)."""
    st.session_state["pg-reopen"] = {"run_id": run["id"], "column": column, "input": run["input"],
                                     "model": run["columns"][column]["model"], "variant": run["variants"][column],
                                     "reward": run.get("reward")}
    try:
        st.switch_page("page_playground.py")
    except StreamlitAPIException:  # outside the studio's navigation (a page run on its own)
        st.info("Open the Playground page: the run's settings are loaded there.")


def apply_reopened(key: str, names: list[str], collections: list[str], template_names: list[str],
                   reward_sources: list[str] | None = None) -> None:
    """On the Playground, before any widget: put a reopened run's input and settings into the widgets' state.

    A model, template, collection or reward model deleted since the run keeps the widget's current choice.
    """
    from app.components.decoding_controls import load_decoding
    from app.components.playground_prompt import NO_COLLECTION, NO_TEMPLATE
    from backend.generation.decoding import DecodingConfig

    saved = st.session_state.pop(f"{key}-reopen", None)
    if not saved:
        return
    state, variant = st.session_state, saved["variant"]
    prompt = variant.get("prompt", {})
    state[f"{key}-prompt"] = saved["input"]
    if saved["model"] in names:
        state[f"{key}-model"] = saved["model"]
    state[f"{key}-mode"] = "Chat" if prompt.get("chat", True) else "Raw completion"
    state[f"{key}-system"] = prompt.get("system") or ""
    state[f"{key}-precision"] = variant.get("precision", "auto")
    state[f"{key}-preset"] = "deterministic"
    load_decoding(key, DecodingConfig.model_validate(variant.get("decoding", {})))
    template = prompt.get("template")
    if template is None or template in template_names:
        state[f"{key}-template"] = template or NO_TEMPLATE
    rag = prompt.get("rag_collection")
    if rag is None or rag in collections:
        state[f"{key}-rag"] = rag or NO_COLLECTION
    state[f"{key}-rag-k"] = prompt.get("rag_k", 3)
    state[f"{key}-shots"], state[f"{key}-cot"] = prompt.get("shots", 0), bool(prompt.get("cot"))
    for field, value in (prompt.get("values") or {}).items():
        state[f"{key}-var-{template}-{field}"] = str(value)
    if (reward := saved.get("reward")) and reward["source"] in (reward_sources or []):
        state[f"{key}-score"], state[f"{key}-bon"] = reward["source"], bool(reward.get("best_of_n"))
    state[f"{key}-last-run"], state[f"{key}-last-col"] = saved["run_id"], saved.get("column", 0)


def _restorable(key: str, prefix: str) -> bool:
    """Widget values worth keeping across pages: not buttons (their state cannot be set), not run-bound choices."""
    name = key.removeprefix(f"{prefix}-")
    return (key.startswith(f"{prefix}-") and name not in {"go", "ds-fill", "save", "reopen", "flash", "fill-error"}
            and not name.startswith(("fix-", "camp-", "last-")))


def restore_widgets(prefix: str) -> None:
    """Streamlit forgets a page's widget values when the user opens another page; put back the ones we kept."""
    for key, value in st.session_state.get(f"_{prefix}-kept", {}).items():
        if key not in st.session_state:
            st.session_state[key] = value


def keep_widgets(prefix: str) -> None:
    """At the end of a page run: remember its widget values (see ``restore_widgets``)."""
    st.session_state[f"_{prefix}-kept"] = {k: v for k, v in st.session_state.items()
                                           if isinstance(k, str) and _restorable(k, prefix)}
