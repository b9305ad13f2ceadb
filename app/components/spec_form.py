"""A form generated from a pydantic spec: one widget per field, help text from its description.

The same spec class validates `studio job submit`, so the form and the CLI cannot drift apart.
"""

import json
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
    if get_origin(annotation) is list and _model_items(annotation):
        return _rows_editor(_model_items(annotation), default, key, help_text)
    if get_origin(annotation) is list:
        text = st.text_input(label, ", ".join(map(str, default)), key=key, help=help_text)
        return [part.strip() for part in text.split(",") if part.strip()]
    if type(None) in get_args(annotation):  # optional (``int | None``…): blank means None; the spec parses the text
        text = st.text_input(label, "" if default is None else str(default), key=key, help=help_text,
                             placeholder="(none)")
        return text.strip() or None
    return st.text_input(label, str(default), key=key, help=help_text)


def _model_items(annotation) -> type[BaseModel] | None:
    """The item class of a ``list[SomeModel]`` field, else None."""
    (item,) = get_args(annotation) or (None,)
    return item if isinstance(item, type) and issubclass(item, BaseModel) else None


def _rows_editor(item_cls: type[BaseModel], default: list, key: str, help_text: str | None) -> list[dict]:
    """A list of argument groups as an editable table: one row per item, one column per field. Rows whose first
    column is blank are dropped (a new row's checkboxes alone do not make an item); the spec validates the rest and
    names a bad row's field."""
    import pandas as pd

    columns = list(item_cls.model_fields)
    rows = pd.DataFrame([item.model_dump() for item in default], columns=columns)
    config = {name: st.column_config.SelectboxColumn(name, options=list(get_args(field.annotation)))
              for name, field in item_cls.model_fields.items() if get_origin(field.annotation) is Literal}
    st.caption(help_text or "")
    edited = st.data_editor(rows, num_rows="dynamic", key=key, column_config=config, hide_index=True)
    rows = json.loads(edited.to_json(orient="records"))  # plain Python values (no numpy scalars), NaN → None
    return [{k: v for k, v in row.items() if v not in (None, "")} for row in rows if row[columns[0]] not in (None, "")]


def spec_form(spec_cls: type[BaseModel], defaults: BaseModel, key: str, *, hidden: tuple[str, ...] = ("kind",),
              options: dict[str, list] | None = None, columns: int = 3) -> dict[str, Any]:
    """Render widgets for every field and return the values as a dict.

    Plain fields are laid out in rows of ``columns``; nested models (argument groups) follow, each in an
    expander. Widget labels are the field names, so the form reads like the YAML it resolves to.
    """
    options = options or {}
    values: dict[str, Any] = {name: getattr(defaults, name) for name in hidden if name in spec_cls.model_fields}
    fields = [(name, field) for name, field in spec_cls.model_fields.items() if name not in hidden]
    plain = [(name, field) for name, field in fields if not isinstance(getattr(defaults, name), BaseModel)]
    groups = [(name, field) for name, field in fields if isinstance(getattr(defaults, name), BaseModel)]
    for start in range(0, len(plain), columns):
        row = st.columns(columns, vertical_alignment="bottom")
        for col, (name, field) in zip(row, plain[start:start + columns], strict=False):
            with col:
                values[name] = _widget(name, field, getattr(defaults, name), f"{key}-{name}", options)
    for name, _field in groups:
        default = getattr(defaults, name)
        with st.expander(f"{name}: {type(default).__name__}", expanded=False):
            values[name] = spec_form(type(default), default, f"{key}-{name}", hidden=(), options=options,
                                     columns=columns)
    return {name: values[name] for name in spec_cls.model_fields}  # field order, as in the YAML
