"""Widgets for a DecodingConfig: a preset picker plus every control, each with its help text from the spec.

Widget values live in ``st.session_state`` under ``{key}-…`` names. Picking a preset writes its values
into those names (an ``on_change`` callback), and ``load_decoding`` does the same for a saved run, so a
reopened run shows exactly the settings it was made with.
"""

import streamlit as st
from pydantic import ValidationError

from backend.generation.decoding import PRESET_HELP, PRESETS, DecodingConfig, decoding_warnings

METHODS = ["Greedy", "Sampling", "Beam search"]
# session-state suffix → DecodingConfig field, for the controls a preset sets
_PRESET_FIELDS = {"t": "temperature", "k": "top_k", "p": "top_p", "minp": "min_p", "typp": "typical_p",
                  "rep": "repetition_penalty", "freq": "frequency_penalty", "pres": "presence_penalty",
                  "ngram": "no_repeat_ngram_size"}


def _help(name: str) -> str:
    return DecodingConfig.model_fields[name].description or ""


def _method(cfg: DecodingConfig) -> str:
    return "Beam search" if cfg.num_beams > 1 else ("Sampling" if cfg.do_sample else "Greedy")


def load_decoding(key: str, cfg: DecodingConfig, *, everything: bool = True) -> None:
    """Write ``cfg`` into the widgets' state (call before they render). ``everything=False`` = a preset's part:
    it leaves length, stops, seed and the number of completions as the user set them."""
    state = st.session_state
    state[f"{key}-method"] = _method(cfg)
    state[f"{key}-beams"] = max(cfg.num_beams, 2)
    for suffix, name in _PRESET_FIELDS.items():
        state[f"{key}-{suffix}"] = getattr(cfg, name)
    if everything:
        state[f"{key}-max"], state[f"{key}-min"] = cfg.max_new_tokens, cfg.min_new_tokens
        state[f"{key}-n"], state[f"{key}-seed"] = cfg.num_return_sequences, cfg.seed or 0
        state[f"{key}-stop"] = "\n".join(s.replace("\n", "\\n") for s in cfg.stop)


def _apply_preset(key: str) -> None:
    load_decoding(key, PRESETS[st.session_state[f"{key}-preset"]], everything=False)


def decoding_controls(key: str, *, compact: bool = False) -> DecodingConfig | None:
    """Render the controls; returns a valid config, or None after showing what is wrong.

    Args:
        key: prefix of the widget keys (one per page or per compared variant).
        compact: show the rarely changed controls folded away (the Compare page's narrow columns).
    """
    if f"{key}-method" not in st.session_state:
        st.session_state[f"{key}-preset"] = "deterministic"
        load_decoding(key, PRESETS["deterministic"])
    preset = st.selectbox("Preset", list(PRESETS), key=f"{key}-preset", on_change=_apply_preset, args=(key,),
                          help=" · ".join(f"{n}: {h}" for n, h in PRESET_HELP.items()))
    st.caption(PRESET_HELP[preset] + " Changing a control below overrides the preset.")
    method = st.radio("Decoding", METHODS, key=f"{key}-method", horizontal=True,
                      help=_help("do_sample") + " Beam search: " + _help("num_beams"))
    sampling, beams = method == "Sampling", method == "Beam search"
    off = "" if sampling else " (sampling only)"
    c1, c2 = st.columns(2)
    values = {
        "do_sample": sampling,
        "num_beams": c2.number_input("Beams", 2, 16, key=f"{key}-beams", help=_help("num_beams"),
                                     disabled=not beams) if beams else 1,
        "temperature": c1.slider("Temperature" + off, 0.0, 2.0, step=0.05, key=f"{key}-t",
                                 help=_help("temperature"), disabled=not sampling),
        "top_k": c2.number_input("Top-k" + off, 0, 1000, key=f"{key}-k", help=_help("top_k"), disabled=not sampling),
        "top_p": c1.slider("Top-p" + off, 0.05, 1.0, step=0.05, key=f"{key}-p", help=_help("top_p"),
                           disabled=not sampling),
        "max_new_tokens": c2.number_input("Max new tokens", 1, 2048, key=f"{key}-max", help=_help("max_new_tokens")),
        "repetition_penalty": c1.slider("Repetition penalty", 1.0, 2.0, step=0.05, key=f"{key}-rep",
                                        help=_help("repetition_penalty")),
        "seed": c2.number_input("Seed (0 = random)", 0, 2**31 - 1, key=f"{key}-seed", help=_help("seed")) or None,
        "num_return_sequences": c1.number_input("Completions", 1, 8, key=f"{key}-n",
                                                help=_help("num_return_sequences")),
    }
    more = st.expander("More decoding settings", expanded=not compact)
    with more:
        a1, a2 = st.columns(2)
        values.update(
            min_p=a1.slider("Min-p" + off, 0.0, 0.5, step=0.01, key=f"{key}-minp", help=_help("min_p"),
                            disabled=not sampling),
            typical_p=a2.slider("Typical-p" + off, 0.05, 1.0, step=0.05, key=f"{key}-typp", help=_help("typical_p"),
                                disabled=not sampling),
            frequency_penalty=a1.slider("Frequency penalty", -2.0, 2.0, step=0.1, key=f"{key}-freq",
                                        help=_help("frequency_penalty")),
            presence_penalty=a2.slider("Presence penalty", -2.0, 2.0, step=0.1, key=f"{key}-pres",
                                       help=_help("presence_penalty")),
            min_new_tokens=a1.number_input("Min new tokens", 0, 2048, key=f"{key}-min", help=_help("min_new_tokens")),
            no_repeat_ngram_size=a2.number_input("No-repeat n-gram size", 0, 10, key=f"{key}-ngram",
                                                 help=_help("no_repeat_ngram_size")),
        )
        stops = st.text_area("Stop sequences (one per line; \\n for a newline)", key=f"{key}-stop", height=68,
                             help=_help("stop"))
    values["stop"] = [s.replace("\\n", "\n") for s in stops.splitlines() if s.strip()]
    try:
        cfg = DecodingConfig(**values)
    except ValidationError as exc:
        st.error("Decoding settings: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()))
        return None
    for note in decoding_warnings(cfg):
        st.caption(f":material/info: {note}")
    return cfg
