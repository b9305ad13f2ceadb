"""Job specifications: one pydantic class per job kind, shared by the form, the CLI and the runner.

Every field has a default and a description; the Jobs page builds its help text from them and
``studio job submit spec.yaml`` validates the same class. Shared argument groups (``TrainArgs``,
``LoraArgs``) are reused by every training method.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig
from backend.prompts.templates import DEFAULT_SUMMARY_TEMPLATE

DEMO_DIALOGSUM = "demo:dialogsum"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainArgs(_Strict):
    max_steps: int = Field(30, ge=-1, description="Optimizer steps to run; -1 = use epochs. A few dozen steps "
                           "already move a 135M model; hundreds for real gains.")
    epochs: float = Field(1.0, gt=0, le=100, description="Passes over the training data (used when max_steps is -1).")
    learning_rate: float = Field(2e-4, gt=0, le=1.0, description="Peak learning rate. LoRA: 1e-4–5e-4; full "
                                 "fine-tuning: 1e-5–5e-5.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="How the learning rate decays after warm-up.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps spent ramping the learning rate up.")
    batch_size: int = Field(4, ge=1, le=512, description="Examples per device per step.")
    grad_accum: int = Field(1, ge=1, le=512, description="Steps whose gradients add up before one update "
                            "(effective batch = batch_size × grad_accum).")
    max_length: int = Field(384, ge=16, le=32768, description="Longest tokenized example; longer ones are truncated.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto = bf16 on a GPU, fp32 on CPU.")
    seed: int = Field(42, ge=0, description="Seed for data order and initialisation.")
    logging_steps: int = Field(1, ge=1, description="Write metrics every N steps.")
    eval_steps: int = Field(0, ge=0, description="Evaluate on the validation split every N steps "
                            "(0 = at the end only).")

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0:
            raise ValueError("use -1 to train for `epochs`, or at least 1 step")
        return value


class LoraArgs(_Strict):
    r: int = Field(16, ge=1, le=512, description="Rank of the update matrices: 4–32 is typical; gains plateau "
                   "above 16.")
    alpha: int = Field(32, ge=1, le=1024, description="Scaling of the update (alpha / r); 2 × r is a common choice.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path; regularizes small datasets.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      min_length=1, description="Module names to adapt (default: attention "
                                      "projections).")


class SFTSpec(_Strict):
    """Supervised fine-tuning on prompt → completion pairs (loss on the completion only)."""

    kind: Literal["sft"] = "sft"
    name: str = Field("", max_length=120, description="A name for the job and the model it produces.")
    base_model: str = Field("smollm2-135m-instruct", description="Model to start from (name, folder or hub id).")
    dataset: str = Field(DEMO_DIALOGSUM, description="`demo:dialogsum` or a JSONL/CSV/Parquet file with the "
                         "template's fields and the target column.")
    template: str = Field(DEFAULT_SUMMARY_TEMPLATE, description="Instruction template name or text with "
                          "{fields} from the data.")
    target_field: str = Field("summary", description="Column holding the completion the model should learn.")
    chat_format: bool = Field(True, description="Wrap examples in the model's chat template (for chat models).")
    peft: Literal["lora", "none"] = Field("lora", description="lora = train small adapters; none = full fine-tuning.")
    lora: LoraArgs = Field(default_factory=LoraArgs)
    train: TrainArgs = Field(default_factory=TrainArgs)
    max_train_examples: int = Field(0, ge=0, description="Use at most this many training rows (0 = all).")
    max_eval_examples: int = Field(64, ge=0, description="Validation rows used for eval loss (0 = none).")


class EvalSpec(_Strict):
    """Generate on a dataset split and score against references (ROUGE, BLEU, toxicity, length)."""

    kind: Literal["eval"] = "eval"
    name: str = Field("", max_length=120, description="A name for this evaluation run.")
    model: str = Field("smollm2-135m-instruct", description="Model or adapter to evaluate.")
    dataset: str = Field(DEMO_DIALOGSUM, description="`demo:dialogsum` or a JSONL/CSV/Parquet file.")
    split: str = Field("test", description="Split to evaluate on.")
    template: str = Field(DEFAULT_SUMMARY_TEMPLATE, description="Instruction template name or text.")
    target_field: str = Field("summary", description="Column with the reference text.")
    chat_format: bool = Field(True, description="Wrap prompts in the model's chat template.")
    max_examples: int = Field(40, ge=1, le=100_000, description="Evaluate the first N rows of the split.")
    batch_size: int = Field(8, ge=1, le=256, description="Prompts generated together.")
    precision: Literal["auto", "float32", "bfloat16", "int8"] = Field("auto", description="Inference precision.")
    decoding: DecodingConfig = Field(default_factory=lambda: DecodingConfig(max_new_tokens=64),
                                     description="Decoding settings (greedy by default, for comparable scores).")

    @field_validator("decoding", mode="before")
    @classmethod
    def _one_completion(cls, value: Any) -> Any:
        # Checked before DecodingConfig's own rules so the message names the field to change.
        get = value.get if isinstance(value, dict) else lambda name, default: getattr(value, name, default)
        n = get("num_return_sequences", 1)
        if n != 1:
            raise ValueError(f"num_return_sequences is {n}, but evaluation scores one completion per example: "
                             "set num_return_sequences to 1")
        return value


JobSpec = Annotated[SFTSpec | EvalSpec, Field(discriminator="kind")]
_adapter = TypeAdapter(JobSpec)
KINDS = {"sft": SFTSpec, "eval": EvalSpec}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _problem(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"][1:]) or "spec"  # loc[0] is the kind (the union's tag)
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown field (check its spelling and nesting)"
    if error["type"] in ("literal_error", "enum") or error["type"].startswith(("greater", "less")):
        msg += f" (got {error.get('input')!r})"
    return f"{where}: {msg}"


def parse_spec(data: Any) -> SFTSpec | EvalSpec:
    """Validate a spec dict; errors become one readable, one-line ``StudioError``."""
    if data is None:
        raise StudioError(f"The job spec is empty: it needs at least `kind` ({' | '.join(KINDS)}).")
    if not isinstance(data, dict):
        raise StudioError(f"A job spec is a mapping of fields (kind: {' | '.join(KINDS)}, …), "
                          f"not {type(data).__name__}.")
    kind = data.get("kind")
    if kind is None:
        raise StudioError(f"A job spec needs `kind`, one of: {', '.join(KINDS)}.")
    if not isinstance(kind, str) or kind not in KINDS:
        raise StudioError(f"kind: unknown job kind {_one_line(repr(kind))[:60]}; use one of: {', '.join(KINDS)}.")
    try:
        return _adapter.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise StudioError(_one_line(f"Invalid {kind} job spec — {problems}")) from None


def load_spec_file(path: str | Path) -> SFTSpec | EvalSpec:
    path = Path(path)
    if not path.is_file():
        raise StudioError(f"No spec file at {path}.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StudioError(_one_line(f"{path} is not valid YAML: {exc}")) from None
    except UnicodeDecodeError:
        raise StudioError(f"{path} is not UTF-8 text.") from None
    return parse_spec(data)


def spec_to_yaml(spec: BaseModel) -> str:
    """YAML that ``load_spec_file`` / ``parse_spec`` read back into an equal spec."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def list_presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.yaml"))}
