"""``completions`` rows with their provenance: one builder for a generated text, one for a copy of a stored one."""

from typing import TYPE_CHECKING

from backend.db.tables import Completion

if TYPE_CHECKING:
    from backend.generation.engine import GenerationResult
    from backend.models.store import ResolvedModel

# What a completion is, wherever it is filed (prompt, campaign item, playground run): copied whole by copy_completion.
PROVENANCE = ("model_id", "model_name", "prompt_text", "text", "decoding", "seed", "template", "prompt_tokens",
              "completion_tokens", "seconds", "finish_reason", "source_label")


def completion_row(result: "GenerationResult", model: "ResolvedModel", prompt_text: str, *,
                   prompt_id: int | None = None, item_id: int | None = None, run_id: int | None = None,
                   template: str | None = None, source_label: str | None = None) -> Completion:
    """A new (unsaved) row for one generated text: the model, the exact prompt fed to it, the decoding settings
    and seed of the call (``result.settings``), token counts, timing and finish reason.

    ``template`` and ``source_label`` are cut to their column widths.
    """
    return Completion(prompt_id=prompt_id, item_id=item_id, run_id=run_id, model_id=model.id, model_name=model.name,
                      prompt_text=prompt_text, text=result.text, decoding=result.settings,
                      seed=result.settings.get("seed"), template=template and template[:200],
                      prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                      seconds=result.seconds, finish_reason=result.finish_reason,
                      source_label=source_label and source_label[:300])


def copy_completion(completion: Completion, **place: object) -> Completion:
    """A new (unsaved) row with ``completion``'s text and provenance, filed where ``place`` says (``prompt_id``,
    ``item_id``, ``run_id``); ``place`` may also override provenance (e.g. ``source_label``)."""
    return Completion(**{**{key: getattr(completion, key) for key in PROVENANCE}, **place})
