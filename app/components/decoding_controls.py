"""Widgets for a DecodingConfig: presets plus every control, each with its help text from the spec."""

import streamlit as st
from pydantic import ValidationError

from backend.generation.decoding import PRESETS, DecodingConfig


def _help(name: str) -> str:
    return DecodingConfig.model_fields[name].description or ""


def decoding_controls(key: str) -> DecodingConfig | None:
    """Render the controls; returns a valid config, or None after showing what is wrong.

    Sampling controls are keyed per preset, so picking another preset resets them to its values.
    """
    preset = st.selectbox("Preset", list(PRESETS), index=0, key=f"{key}-preset",
                          help="deterministic = greedy; balanced = mild sampling; creative = hotter sampling.")
    base = PRESETS[preset]
    do_sample = st.toggle("Sampling", base.do_sample, key=f"{key}-sample-{preset}", help=_help("do_sample"))
    c1, c2 = st.columns(2)
    values = {
        "do_sample": do_sample,
        "temperature": c1.slider("Temperature", 0.0, 2.0, base.temperature, 0.05, key=f"{key}-t-{preset}",
                                 help=_help("temperature"), disabled=not do_sample),
        "top_k": c2.number_input("Top-k", 0, 1000, base.top_k, key=f"{key}-k-{preset}", help=_help("top_k"),
                                 disabled=not do_sample),
        "top_p": c1.slider("Top-p", 0.05, 1.0, base.top_p, 0.05, key=f"{key}-p-{preset}", help=_help("top_p"),
                           disabled=not do_sample),
        "max_new_tokens": c2.number_input("Max new tokens", 1, 1024, 128, key=f"{key}-max",
                                          help=_help("max_new_tokens")),
        "repetition_penalty": c1.slider("Repetition penalty", 1.0, 2.0, base.repetition_penalty, 0.05,
                                        key=f"{key}-rep-{preset}", help=_help("repetition_penalty")),
        "seed": c2.number_input("Seed (0 = random)", 0, 2**31 - 1, 0, key=f"{key}-seed", help=_help("seed")) or None,
    }
    with st.expander("More decoding settings"):
        a1, a2 = st.columns(2)
        values.update(
            min_new_tokens=a1.number_input("Min new tokens", 0, 1024, 0, key=f"{key}-min",
                                           help=_help("min_new_tokens")),
            no_repeat_ngram_size=a2.number_input("No-repeat n-gram size", 0, 10, 0, key=f"{key}-ngram",
                                                 help=_help("no_repeat_ngram_size")),
            frequency_penalty=a1.slider("Frequency penalty", -2.0, 2.0, 0.0, 0.1, key=f"{key}-freq",
                                        help=_help("frequency_penalty")),
            presence_penalty=a2.slider("Presence penalty", -2.0, 2.0, 0.0, 0.1, key=f"{key}-pres",
                                       help=_help("presence_penalty")),
        )
        stops = st.text_input("Stop sequences (comma-separated; \\n for a newline)", key=f"{key}-stop",
                              help=_help("stop"))
    values["stop"] = [s.strip().replace("\\n", "\n") for s in stops.split(",") if s.strip()]
    try:
        return DecodingConfig(**values)
    except ValidationError as exc:
        st.error("Decoding settings: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()))
        return None
