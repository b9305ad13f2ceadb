"""Zero-, one- and few-shot prompts: an instruction, k worked examples, then the input (pure).

A ``FewShotTemplate`` describes *one example*, with ``{field}`` slots and the answer slot last::

    Classify this review:
    {review}
    Sentiment: {sentiment}

A worked example fills every slot; the input fills every slot but the answer and stops where the
answer would begin ("…Sentiment:"), so the model writes it. With k = 0, 1, 2 the sentiment
template gives exactly the course's zero-, one- and few-shot prompts. Examples are joined by
``separator``; the instruction, when there is one, comes first, once.

Chain-of-thought: zero-shot appends a trigger ("Let's think step by step.") after the answer
indicator; few-shot uses examples whose answers show the reasoning (see ``cot.py``).
"""

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from backend.errors import StudioError

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_COT_TRIGGER = "Let's think step by step."  # zero-shot chain-of-thought cue
SHOT_ADVICE_THRESHOLD = 6  # "upwards of 5 or 6 examples": past this, fine-tuning is the better tool


def template_slots(text: str) -> list[str]:
    """The ``{field}`` names in ``text`` in order of first use; malformed braces raise ``StudioError``."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise StudioError(f"The template's braces do not match ({exc}). Write {{field}} for a slot and "
                          "{{ or }} for a literal brace.") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not FIELD_NAME.match(name) or spec or conversion:
            raise StudioError(f"'{{{name}}}' is not a valid slot: use plain names like {{review}} "
                              "(letters, digits, underscores).")
        names.append(name)
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class FewShotTemplate:
    """One task's prompt format; see the module docstring."""

    name: str
    text: str
    task: str = "custom"
    answer_field: str | None = None
    instruction: str = ""
    separator: str = "\n\n"
    description: str = ""
    examples: tuple[dict[str, str], ...] = ()
    defaults: dict[str, str] = field(default_factory=dict)
    cot_trigger: str | None = None

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise StudioError("The template text is empty.")
        slots = template_slots(self.text)
        template_slots(self.instruction)
        if self.answer_field is not None:
            if self.answer_field not in slots:
                raise StudioError(f"The answer field {{{self.answer_field}}} does not appear in the template.")
            if slots[-1] != self.answer_field or self.text.count("{" + self.answer_field + "}") != 1:
                raise StudioError(f"{{{self.answer_field}}} must appear once, after every other slot: the "
                                  "model writes the answer where the prompt ends.")
        if not slots:
            raise StudioError("The template has no {field} slot for the input.")
        for example in self.examples:
            check_example(self, example)

    @property
    def input_fields(self) -> list[str]:
        """Slots the input fills (everything but the answer), in order."""
        return [f for f in template_slots(self.text) if f != self.answer_field]

    @property
    def query_text(self) -> str:
        """The template cut where the answer begins (trailing whitespace removed)."""
        if self.answer_field is None:
            return self.text
        return self.text[: self.text.index("{" + self.answer_field + "}")].rstrip()

    @property
    def supports_shots(self) -> bool:
        return self.answer_field is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(examples=list(self.examples), input_fields=self.input_fields, supports_shots=self.supports_shots)
        return data


def plain_template(name: str, text: str, task: str = "custom", description: str = "") -> FewShotTemplate:
    """A template without an answer slot (zero-shot only), e.g. the job runners' summary templates."""
    return FewShotTemplate(name=name, text=text, task=task, description=description)


def _fill(text: str, values: dict[str, Any]) -> str:
    return text.format_map({k: "" if v is None else str(v) for k, v in values.items()})


def check_example(template: FewShotTemplate, example: dict[str, Any]) -> None:
    """Raise ``StudioError`` unless ``example`` fills every slot of the template, answer included."""
    if not template.supports_shots:
        raise StudioError(f"Template '{template.name}' has no answer slot, so it cannot take worked examples.")
    need = template_slots(template.text)
    missing = [f for f in need if f not in example and f not in template.defaults]
    if missing:
        raise StudioError(f"An example lacks the field(s) {', '.join(missing)} (template '{template.name}' "
                          f"needs {', '.join(need)}; the example has {', '.join(map(str, example)) or 'nothing'}).")
    if not str(example.get(template.answer_field, "")).strip():
        raise StudioError(f"An example has an empty answer field '{template.answer_field}'.")


def missing_inputs(template: FewShotTemplate, values: dict[str, Any]) -> list[str]:
    """Input slots that neither ``values`` nor the template's defaults fill."""
    return [f for f in template.input_fields if not str(values.get(f, template.defaults.get(f, ""))).strip()]


def render_shot(template: FewShotTemplate, example: dict[str, Any]) -> str:
    """One worked example: every slot filled, answer included."""
    check_example(template, example)
    return _fill(template.text, {**template.defaults, **example})


def render_query(template: FewShotTemplate, values: dict[str, Any], cot: bool = False) -> str:
    """The input part: slots filled, ending where the answer would start (plus the CoT trigger when asked)."""
    missing = missing_inputs(template, values)
    if missing:
        raise StudioError(f"Fill {', '.join('{' + m + '}' for m in missing)} for template '{template.name}'.")
    query = _fill(template.query_text, {**template.defaults, **values})
    if cot:
        query += " " + (template.cot_trigger or DEFAULT_COT_TRIGGER)
    return query



def build_prompt(template: FewShotTemplate, values: dict[str, Any], examples: Sequence[dict[str, Any]] = (),
                 *, cot: bool = False) -> str:
    """Instruction, then each example, then the input — joined by the template's separator.

    Args:
        template: the prompt format.
        values: the input's slot values (from a form or a dataset row).
        examples: worked examples, in the order they appear (put the most relevant last).
        cot: append the zero-shot chain-of-thought trigger after the answer indicator.
    """
    if examples and not template.supports_shots:
        raise StudioError(f"Template '{template.name}' has no answer slot, so it cannot take worked examples: "
                          "use 0 shots or a template with an answer field.")
    parts = [_fill(template.instruction, {**template.defaults, **values})] if template.instruction.strip() else []
    parts += [render_shot(template, e) for e in examples]
    parts.append(render_query(template, values, cot=cot))
    return template.separator.join(parts)


def shot_name(k: int) -> str:
    return {0: "zero-shot", 1: "one-shot"}.get(k, f"few-shot ({k})")


def shot_advice(k: int) -> str | None:
    """The course's escalation hint once the examples stop paying for their context."""
    if k >= SHOT_ADVICE_THRESHOLD:
        return (f"{k} examples: if five or six examples do not get the model there, fine-tune it instead "
                "(SFT or LoRA on the Jobs page) — examples also eat the context window.")
    return None


def fit_examples(build: Callable[[list[dict[str, Any]]], str], examples: Sequence[dict[str, Any]],
                 count_tokens: Callable[[str], int], budget: int) -> tuple[list[dict[str, Any]], str, int]:
    """Drop examples from the front (the farthest from the input) until the prompt fits ``budget`` tokens.

    Returns:
        ``(kept examples, prompt, prompt tokens)``; the prompt may still exceed the budget with no
        examples left (the caller truncates the input or reports it).
    """
    kept = list(examples)
    while True:
        prompt = build(kept)
        tokens = count_tokens(prompt)
        if tokens <= budget or not kept:
            return kept, prompt, tokens
        kept = kept[1:]


def with_overrides(template: FewShotTemplate, **changes) -> FewShotTemplate:
    """A copy with some attributes changed (validated again), e.g. a user-edited example format."""
    return replace(template, **changes)
