"""Text the studio did not write — model output, guidelines, user and campaign names — shown inert.

Streamlit already drops raw HTML (``<script>``, ``onerror``, ``javascript:`` do nothing), but its markdown still
loads images (``![](https://…/pixel.png)`` is a tracking pixel, or an exfiltration channel for prompt-injected
output) and makes links; Plotly turns ``<a href>`` in a label into a live link. So:

- ``safe_markdown(text)`` keeps the formatting (emphasis, lists, headings, code) but makes every link and image
  plain text: outside code, ``[``, ``]`` and ``<`` are escaped and bare URLs lose their link (a zero-width space
  after ``https:`` and ``www``). Code spans and fenced code blocks are left as written (markdown makes nothing live inside them).
- ``escape_markdown(text)`` escapes every markdown character: for names put inside our own markdown.
- ``show_chart(fig, key)`` draws a figure made from such text, through ``inert_figure``.
- ``inert_figure(fig)`` escapes ``<`` and ``>`` in a Plotly figure's strings (data, whose values become tick labels
  and legend entries, titles, annotations), which Plotly then shows as the characters instead of reading them as
  tags (so no ``<br>`` or ``<b>`` in our own titles either).
"""

import re

import streamlit as st

_CODE = re.compile(r"(^[ \t]*(`{3,}|~{3,})[^\n]*\n[\s\S]*?(?:^[ \t]*\2[ \t]*$|\Z)|(`+)[^`][\s\S]*?(?<!`)\3(?!`))",
                   re.MULTILINE)
_LIVE = re.compile(r"[\[\]<]|(?<=[A-Za-z])://|(?i:\bwww)\.")
_MARKDOWN_CHARS = re.compile(r"([\\`*_>!|~$&])")  # inline formatting; _inert adds [ ] < and bare URLs


_ZWSP = "\u200b"  # zero-width space: the GFM autolinker, which runs after escapes are read, needs "://" and "www."


def _inert(plain: str) -> str:
    return _LIVE.sub(lambda m: "\\" + m.group() if len(m.group()) == 1 else
                     (":" + _ZWSP + "//" if m.group() == "://" else m.group()[:-1] + _ZWSP + "."), plain)


def safe_markdown(text: str | None) -> str:
    """Markdown of ``text`` with no live link or image (see the module docstring)."""
    text = text or ""
    out, last = [], 0
    for match in _CODE.finditer(text):
        out += [_inert(text[last:match.start()]), match.group()]
        last = match.end()
    out.append(_inert(text[last:]))
    return "".join(out)


def escape_markdown(text: str | None) -> str:
    """``text`` shown literally inside markdown (formatting characters escaped, no link or image; one line)."""
    return _inert(_MARKDOWN_CHARS.sub(r"\\\1", str(text or "")).replace("\n", " "))


def _plain(value):
    if isinstance(value, str):
        return value.replace("<", "&lt;").replace(">", "&gt;")
    return value


_TRACE_FIELDS = ("x", "y", "z", "text", "hovertext", "name", "labels", "parents", "ids", "customdata", "legendgroup",
                 "legendgrouptitle")


def _plain_all(value):
    if isinstance(value, str):
        return _plain(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_all(v) for v in value)
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in ("O", "U"):  # numpy arrays of strings
        return [_plain_all(v) for v in value.tolist()]
    return value


def inert_figure(fig):
    """The Plotly figure with ``<`` and ``>`` of every data string and annotation escaped (returns ``fig``)."""
    for trace in fig.data:
        for name in _TRACE_FIELDS:
            if name in trace and trace[name] is not None and not isinstance(trace[name], dict):
                try:
                    trace[name] = _plain_all(trace[name])
                except (ValueError, TypeError):  # a field that rejects the new value: leave it
                    pass
    for note in fig.layout.annotations or ():
        note.text = _plain(note.text)
    if fig.layout.title.text:
        fig.layout.title.text = _plain(fig.layout.title.text)
    if fig.layout.legend.title.text:
        fig.layout.legend.title.text = _plain(fig.layout.legend.title.text)
    for axis in [k for k in fig.layout if k.startswith(("xaxis", "yaxis"))]:
        ax = fig.layout[axis]
        if ax.ticktext is not None:
            ax.ticktext = _plain_all(ax.ticktext)
        if ax.title.text:
            ax.title.text = _plain(ax.title.text)
    return fig


def show_chart(fig, key: str, where=st, **options) -> None:
    """Draw a Plotly figure built from untrusted text, full width, with ``inert_figure`` applied; ``where`` is a
    column or container (default: the page)."""
    where.plotly_chart(inert_figure(fig), key=key, **{"width": "stretch", **options})
