"""Instruction templates for the studio's tasks (pure: no model, no I/O).

The dialogue-summary phrasings follow the FLAN/SAMSum and DialogSum templates of the course
material; ``{field}`` slots are filled from a dataset row or a form.
"""

import string

SUMMARY_TEMPLATES: dict[str, str] = {
    "summarize-conversation": "Summarize the following conversation.\n\n{dialogue}\n\nSummary:",
    "short-summary": "Here is a dialogue:\n\n{dialogue}\n\nWrite a short summary.",
    "what-summary": "Dialogue:\n{dialogue}\n\nWhat is a summary of this dialogue?",
    "briefly": "{dialogue}\n\nBriefly summarize that dialogue.",
    # The seven FLAN "samsum" phrasings (Generative AI on AWS, ch. 1; google-research/FLAN templates.py).
    # Training on several ways of saying the same instruction helps a model generalise.
    "flan-briefly": "{dialogue}\n\nBriefly summarize that dialogue.",
    "flan-short-summary": "Here is a dialogue:\n{dialogue}\n\nWrite a short summary!",
    "flan-what-summary": "Dialogue:\n{dialogue}\n\nWhat is a summary of this dialogue?",
    "flan-two-sentences": "Dialogue:\n{dialogue}\n\nWhat was that dialogue about, in two sentences or less?",
    "flan-talking-about": "Here is a dialogue:\n{dialogue}\n\nWhat were they talking about?",
    "flan-main-points": "Dialogue:\n{dialogue}\n\nWhat were the main points in that conversation?",
    "flan-going-on": "Dialogue:\n{dialogue}\n\nWhat was going on in that conversation?",
}
DEFAULT_SUMMARY_TEMPLATE = "summarize-conversation"


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names a template needs, in order of first use."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    return list(dict.fromkeys(names))


def resolve_template(name_or_text: str) -> str:
    """A template's text from its library name, or the text itself when it is not a known name."""
    return SUMMARY_TEMPLATES.get(name_or_text, name_or_text)


def render(template: str, row: dict) -> str:
    """Fill a template from a row; a missing field is a ``ValueError`` that names it."""
    missing = [f for f in template_fields(template) if f not in row]
    if missing:
        raise ValueError(f"The template needs the field(s) {', '.join(missing)}, which the data does not have "
                         f"(it has: {', '.join(sorted(row)) or 'nothing'}).")
    return template.format(**{f: row[f] for f in template_fields(template)})
