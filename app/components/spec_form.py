"""A form generated from a pydantic spec: one widget per field, help text from its description.

The same spec class validates `studio job submit`, so the form and the CLI cannot drift apart.
"""

from typing import Any, Literal, get_args, get_origin

import streamlit as st
from pydantic import BaseModel


def _widget(label: str, field, default: Any, key: str, options: dict[str, list]) -> Any:
    annotation, help_text = field.annotation, field.description
    if label in options:
        choices = options[label]
        return st.selectbox(label, choices, index=choices.index(default) if default in choices else 0,
                            key=key, help=help_text)
    if get_origin(annotation) is Literal:
        choices = list(get_args(annotation))
        return st.selectbox(label, choices, index=choices.index(default), key=key, help=help_text)
    if annotation is bool:
        return st.checkbox(label, default, key=key, help=help_text)
    if annotation is int:
        return st.number_input(label, value=int(default), step=1, key=key, help=help_text)
    if annotation is float:
        return st.number_input(label, value=float(default), format="%g", key=key, help=help_text)
    if get_origin(annotation) is list:
        text = st.text_input(label, ", ".join(map(str, default)), key=key, help=help_text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return st.text_input(label, str(default), key=key, help=help_text)


def spec_form(spec_cls: type[BaseModel], defaults: BaseModel, key: str, *, hidden: tuple[str, ...] = ("kind",),
              options: dict[str, list] | None = None) -> dict[str, Any]:
    """Render widgets for every field (nested models in expanders) and return the values as a dict."""
    values: dict[str, Any] = {}
    options = options or {}
    for name, field in spec_cls.model_fields.items():
        default = getattr(defaults, name)
        if name in hidden:
            values[name] = default
        elif isinstance(default, BaseModel):
            with st.expander(name.replace("_", " ").capitalize(), expanded=False):
                values[name] = spec_form(type(default), default, f"{key}-{name}", hidden=(), options=options)
        else:
            values[name] = _widget(name, field, default, f"{key}-{name}", options)
    return values
