"""Job specs as YAML files: read one (validated), write one, and the shipped presets (``jobs/presets/*.yaml``)."""

from pathlib import Path

import yaml
from pydantic import BaseModel

from backend.errors import StudioError
from backend.limits import MAX_SPEC_FILE_BYTES
from backend.textfiles import read_text_file
from jobs.registry import parse_spec
from jobs.specs import SpecModel

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def load_spec_file(path: str | Path) -> SpecModel:
    """Read and validate a YAML job spec; raises ``StudioError`` saying what is wrong with the file."""
    text = read_text_file(path, "spec file", "save the spec as UTF-8 YAML", max_bytes=MAX_SPEC_FILE_BYTES)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StudioError(" ".join(f"{path} is not valid YAML: {exc}".split())[:500]) from None
    except RecursionError:
        raise StudioError(f"{path} is not a job spec: its YAML is nested too deeply.") from None
    try:
        return parse_spec(data)
    except RecursionError:
        raise StudioError(f"{path} is not a job spec: its values are nested too deeply.") from None


def spec_to_yaml(spec: BaseModel) -> str:
    """YAML that ``load_spec_file`` / ``parse_spec`` read back into an equal spec."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def list_presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.yaml"))}
