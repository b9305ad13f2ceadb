"""Job specifications: one pydantic class per job kind, shared by the form, the CLI and the runner.

Every field has a default and a description; the Jobs page builds its help text from them and
``studio job submit spec.yaml`` validates the same class. Shared argument groups (``TrainArgs``,
``LoraArgs``) are reused by every training method.
"""

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

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
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay; 0.0–0.1. Helps full fine-tuning "
                                "on small data; LoRA rarely needs it.")
    save_steps: int = Field(0, ge=0, description="Write a checkpoint every N steps (0 = none). Checkpoints let a "
                            "failed or cancelled job be resumed (`resume_from_job`); a cancelled job also "
                            "checkpoints where it stopped when this is on.")
    save_total_limit: int = Field(2, ge=1, le=100, description="Keep only the last k checkpoints (older ones are "
                                  "deleted; the best one is kept too when early stopping is on).")
    early_stopping_patience: int = Field(0, ge=0, le=100, description="Stop when the eval loss has not improved for "
                                         "this many evaluations (0 = off). Needs validation data and eval_steps; "
                                         "the best checkpoint becomes the output. 3–5 is typical.")
    early_stopping_threshold: float = Field(0.0, ge=0, description="How much the eval loss must drop to count as "
                                            "an improvement (0 = any drop).")

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0:
            raise ValueError("use -1 to train for `epochs`, or at least 1 step")
        return value

    @model_validator(mode="after")
    def _early_stopping(self) -> "TrainArgs":
        # transformers' EarlyStoppingCallback reads the eval loss and needs the best checkpoint saved on the
        # same schedule (load_best_model_at_end): say so here rather than fail inside the Trainer.
        if self.early_stopping_patience:
            if not self.eval_steps:
                raise ValueError("early_stopping_patience needs eval_steps > 0 (the eval loss is what it watches)")
            if self.save_steps and self.save_steps % self.eval_steps:
                raise ValueError(f"with early stopping, save_steps ({self.save_steps}) must be a multiple of "
                                 f"eval_steps ({self.eval_steps}) so the best evaluation has a checkpoint")
        return self


class LoraArgs(_Strict):
    r: int = Field(16, ge=1, le=512, description="Rank of the update matrices: 4–32 is typical; gains plateau "
                   "above 16.")
    alpha: int = Field(32, ge=1, le=1024, description="Scaling of the update (alpha / r); 2 × r is a common choice.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path; regularizes small datasets.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      min_length=1, description="Module names to adapt (default: attention "
                                      "projections).")


class PromptTuningArgs(_Strict):
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Soft-prompt length: trainable embeddings put "
                                    "before every input. 20–100 is usually enough; each costs hidden_size "
                                    "parameters and one token of context.")
    init: Literal["text", "random", "sample_vocab"] = Field(
        "text", description="Start from the embeddings of init_text (text, the usual choice), from random vectors "
        "(random), or from random vocabulary tokens (sample_vocab).")
    init_text: str = Field("Summarize the following conversation in one or two sentences.", max_length=2000,
                           description="Text whose token embeddings start the soft prompt (repeated or cut to "
                           "num_virtual_tokens); used when init is text.")

    @model_validator(mode="after")
    def _text(self) -> "PromptTuningArgs":
        if self.init == "text" and not self.init_text.strip():
            raise ValueError("init_text is empty: give a phrase describing the task, or set init to random")
        return self


def _none_if_blank(value: Any) -> Any:
    """Forms send "" or "None" for an empty optional field."""
    return None if isinstance(value, str) and value.strip() in ("", "None", "none", "null") else value


class SFTSpec(_Strict):
    """Supervised fine-tuning on prompt → completion pairs (loss on the completion only)."""

    kind: Literal["sft"] = "sft"
    name: str = Field("", max_length=120, description="A name for the job and the model it produces.")
    base_model: str = Field("smollm2-135m-instruct", description="Model to start from (name, folder or hub id).")
    dataset: str = Field(DEMO_DIALOGSUM, description="`demo:dialogsum`, a JSONL/CSV/Parquet file (or a folder of "
                         "train/validation/test files) with the template's fields and the target column, or a hub "
                         "dataset `hub:org/name` (needs network access).")
    template: str = Field(DEFAULT_SUMMARY_TEMPLATE, description="Instruction template name or text with "
                          "{fields} from the data.")
    template_mix: list[str] = Field(default_factory=list, description="Several phrasings of the instruction (names "
                                    "or texts): each example gets one of them, picked at random with the seed "
                                    "(e.g. the seven flan-* summary templates). Empty = every example uses "
                                    "`template`.")
    target_field: str = Field("summary", description="Column holding the completion the model should learn.")
    chat_format: bool = Field(True, description="Wrap examples in the model's chat template (for chat models).")
    peft: Literal["lora", "prompt_tuning", "none"] = Field(
        "lora", description="lora = train small low-rank adapters; prompt_tuning = train a soft prompt only; "
        "none = full fine-tuning (every weight).")
    lora: LoraArgs = Field(default_factory=LoraArgs)
    prompt_tuning: PromptTuningArgs = Field(default_factory=PromptTuningArgs,
                                            description="Soft-prompt settings (used when peft is prompt_tuning).")
    train: TrainArgs = Field(default_factory=TrainArgs)
    max_train_examples: int = Field(0, ge=0, description="Use at most this many training rows (0 = all).")
    max_eval_examples: int = Field(64, ge=0, description="Validation rows used for eval loss (0 = none).")
    validation_share: float = Field(0.1, ge=0, le=0.5, description="When the dataset has no `validation` split, "
                                    "hold out this share of the training rows (shuffled with the seed) for eval "
                                    "loss; 0 = no validation.")
    long_examples: Literal["truncate", "skip", "refuse"] = Field(
        "truncate", description="Examples longer than train.max_length tokens: truncate = cut the end (an example "
        "whose prompt alone fills max_length has nothing left to learn and is dropped); skip = drop them; refuse "
        "= fail the job. The log and the data/* metrics count them.")
    resume_from_job: int | None = Field(None, ge=1, description="Continue from the last checkpoint of this failed "
                                        "or cancelled SFT job (same base model and PEFT settings; it needs "
                                        "train.save_steps > 0 when it ran).")

    _blank_resume = field_validator("resume_from_job", mode="before")(_none_if_blank)


class EvalSpec(_Strict):
    """Generate on a dataset split and score against references (ROUGE, BLEU, toxicity, length)."""

    kind: Literal["eval"] = "eval"
    name: str = Field("", max_length=120, description="A name for this evaluation run.")
    model: str = Field("smollm2-135m-instruct", description="Model or adapter to evaluate.")
    dataset: str = Field(DEMO_DIALOGSUM, description="`demo:dialogsum`, a JSONL/CSV/Parquet file or folder, or a hub "
                         "dataset `hub:org/name` (needs network access).")
    split: str = Field("test", description="Split to evaluate on.")
    template: str = Field(DEFAULT_SUMMARY_TEMPLATE, description="Instruction template name or text.")
    target_field: str = Field("summary", description="Column with the reference text.")
    chat_format: bool = Field(True, description="Wrap prompts in the model's chat template.")
    max_examples: int = Field(40, ge=1, le=100_000, description="Evaluate the first N rows of the split.")
    batch_size: int = Field(8, ge=1, le=256, description="Prompts generated together.")
    precision: Literal["auto", "float32", "bfloat16", "int8"] = Field("auto", description="Inference precision.")
    decoding: DecodingConfig = Field(default_factory=lambda: DecodingConfig(max_new_tokens=64),
                                     description="Decoding settings (greedy by default, for comparable scores).")
    perplexity: bool = Field(True, description="Also score the perplexity of the references given the prompts "
                             "(lower is better; one forward pass per example).")
    toxicity_model: str | None = Field(None, description="A sequence-classification model (local folder or hub id) "
                                       "to score toxicity, e.g. a hate-speech RoBERTa; empty = the packaged "
                                       "profanity classifier. Score = probability of the toxic class.")
    toxic_label: str | None = Field(None, description="Name of the toxic class in toxicity_model (e.g. hate); "
                                    "empty = the class whose name means toxic/hate/offensive.")
    extra_metrics: list[str] = Field(default_factory=list, description="More metrics to compute with Hugging Face "
                                     "`evaluate` (names or local metric folders); each must load when the job is "
                                     "submitted (hub names need network access).")

    _blank_optional = field_validator("toxicity_model", "toxic_label", mode="before")(_none_if_blank)

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


# --- labeling jobs ---------------------------------------------------------------------------------


# --- RLHF jobs -------------------------------------------------------------------------------------


# One entry per job kind (one line each): the form, the CLI, the queue and the runner all read this.
KINDS: dict[str, type[_Strict]] = {
    "sft": SFTSpec,
    "eval": EvalSpec,
}
JobSpec = Annotated[Union[tuple(KINDS.values())], Field(discriminator="kind")]  # noqa: UP007 (built at run time)
_adapter = TypeAdapter(JobSpec)


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


def parse_spec(data: Any) -> _Strict:
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


def load_spec_file(path: str | Path) -> _Strict:
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
