"""Leave with the model: export a registered model as one GGUF file (llama.cpp, Ollama, LM Studio load it).

A LoRA adapter is merged into its base first, in a temporary folder (the same merge as "Merge and export").
torch, transformers, peft and gguf are imported inside the functions that need them.
"""

import re
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backend.errors import StudioError
from backend.limits import confine
from backend.settings import get_settings

GGUF_DTYPES = ("f16", "q8_0", "f32")


def default_export_path(model_name: str, dtype: str) -> Path:
    """``<data dir>/exports/<name>.<dtype>.gguf`` (characters a file name cannot hold become ``_``)."""
    safe = re.sub(r"[^\w.-]+", "_", model_name).strip("._") or "model"
    return get_settings().resolved_data_dir / "exports" / f"{safe}.{dtype}.gguf"


def export_model_gguf(session: Session, model_name: str, out_path: str | Path | None = None,
                      dtype: str = "f16") -> dict[str, Any]:
    """Write a registered model (or a model folder) as a GGUF file; an adapter is merged into its base first.

    Args:
        session: any session; its transaction is committed before the slow part (no SQLite lock held while
            merging and converting).
        model_name: a registered name or a model folder (``store.resolve``).
        out_path: the ``.gguf`` file, inside the data dir or a folder of ``STUDIO_ALLOWED_PATHS``; default
            ``<data dir>/exports/<name>.<dtype>.gguf`` (overwritten).
        dtype: ``f16``, ``q8_0`` or ``f32``.

    Returns:
        ``{"path": str, "bytes": int, "dtype": str, "model": str}``.

    Raises:
        StudioError: unknown model, a reward model, a prompt-tuning adapter, a hub id that is not downloaded, an
            architecture or tokenizer the exporter cannot write (``backend.models.gguf_export``).
    """
    from backend.models.gguf_export import export_gguf
    from backend.models.store import resolve
    from jobs.modeling import is_prompt_learning
    from services.training import merge_to_folder, mergeable_adapter

    if dtype not in GGUF_DTYPES:
        raise StudioError(f"Unknown GGUF type '{dtype}': choose one of {', '.join(GGUF_DTYPES)}.")
    given = confine(out_path, "output") if out_path else None
    if given is not None and given.is_dir():
        raise StudioError(f"{out_path} is a folder: give the .gguf file to write.")
    model = resolve(session, model_name)
    if model.kind == "reward":
        raise StudioError(f"'{model.name}' is a reward model (a scorer with a value head, not a text generator): "
                          "llama.cpp and Ollama run language models, so there is nothing to export as GGUF.")
    if model.kind == "adapter":
        if is_prompt_learning(model.path):
            raise StudioError(f"'{model.name}' is a prompt-tuning adapter: a soft prompt is extra input, not a "
                              "weight update, so it cannot be merged into a GGUF file. Export its base model, or "
                              "train a LoRA adapter instead.")
        model = mergeable_adapter(session, model_name)
    elif not Path(model.path).is_dir():
        raise StudioError(f"'{model.name}' is a hub id with no local folder: GGUF export needs the model on disk. "
                          "Download it (e.g. `huggingface-cli download`) and add the folder with `studio models add`.")
    target = given or default_export_path(model.name, dtype)
    session.commit()  # NOTE: no transaction (so no SQLite lock) while the adapter merges and the file is written
    if model.kind == "adapter":
        with tempfile.TemporaryDirectory(prefix="studio-gguf-") as merged:
            merge_to_folder(model.path, model.base_path, Path(merged))
            written = export_gguf(merged, target, dtype=dtype, name=model.name)
    else:
        written = export_gguf(model.path, target, dtype=dtype, name=model.name)
    return {"path": str(written), "bytes": written.stat().st_size, "dtype": dtype, "model": model.name}
