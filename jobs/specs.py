"""Job specifications: one pydantic class per job kind, shared by the form, the CLI and the runner.

Every field has a default and a description; the Jobs page builds its help text from them and
``studio job submit spec.yaml`` validates the same class. Shared argument groups are reused: ``TrainArgs`` and
``LoraArgs`` by every training method, ``PolicyPromptArgs`` and ``RLLoopArgs`` by the online RL methods (PPO, GRPO).
Which kinds exist, and what runs and checks each, is ``jobs.registry``; YAML files and presets are
``jobs.spec_files``.

Every field is bounded: numbers have an upper bound (and Infinity/NaN are refused), strings at most
``MAX_TEXT_CHARS`` characters, lists a few dozen entries, so an absurd value (``max_steps: 1e12``, ``seed: 1e23``)
fails validation with a message instead of running forever or crashing inside a library.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig
from backend.metrics.extra import EXTRA_METRICS, check_extra_metric
from backend.prompts.templates import DEFAULT_SUMMARY_TEMPLATE

DEMO_DIALOGSUM = "demo:dialogsum"
MAX_SEED = 2**32 - 1  # numpy's and torch's seeding accept this range everywhere
MAX_ID = 2**31 - 1
MAX_STEPS = 1_000_000
MAX_ROWS = 10_000_000
MAX_TEXT_CHARS = 20_000  # any string field: names, paths, templates


class SpecModel(BaseModel):
    """Base of every spec and argument group: unknown fields are refused (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=MAX_TEXT_CHARS)


class TrainArgs(SpecModel):
    max_steps: int = Field(30, ge=-1, le=MAX_STEPS, description="Optimizer steps to run; -1 = use epochs. A few dozen steps "
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
    seed: int = Field(42, ge=0, le=MAX_SEED, description="Seed for data order and initialisation.")
    logging_steps: int = Field(1, ge=1, le=MAX_STEPS, description="Write metrics every N steps.")
    eval_steps: int = Field(0, ge=0, le=MAX_STEPS, description="Evaluate on the validation split every N steps "
                            "(0 = at the end only).")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay; 0.0–0.1. Helps full fine-tuning "
                                "on small data; LoRA rarely needs it.")
    save_steps: int = Field(0, ge=0, le=MAX_STEPS, description="Write a checkpoint every N steps (0 = none). Checkpoints let a "
                            "failed or cancelled job be resumed (`resume_from_job`); a cancelled job also "
                            "checkpoints where it stopped when this is on.")
    save_total_limit: int = Field(2, ge=1, le=100, description="Keep only the last k checkpoints (older ones are "
                                  "deleted; the best one is kept too when early stopping is on).")
    early_stopping_patience: int = Field(0, ge=0, le=100, description="Stop when the eval loss has not improved for "
                                         "this many evaluations (0 = off). Needs validation data and eval_steps; "
                                         "the best checkpoint becomes the output. 3–5 is typical.")
    early_stopping_threshold: float = Field(0.0, ge=0, le=100, description="How much the eval loss must drop to count as "
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


class LoraArgs(SpecModel):
    r: int = Field(16, ge=1, le=512, description="Rank of the update matrices: 4–32 is typical; gains plateau "
                   "above 16.")
    alpha: int = Field(32, ge=1, le=1024, description="Scaling of the update (alpha / r); 2 × r is a common choice.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path; regularizes small datasets.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      min_length=1, max_length=64, description="Module names to adapt (default: attention "
                                      "projections).")
    use_rslora: bool = Field(False, description="Rank-stabilised LoRA: scale the update by alpha / √r instead of "
                             "alpha / r, so higher ranks keep learning (useful from r = 32 up).")
    use_dora: bool = Field(False, description="DoRA: learn each weight's magnitude apart from its direction; often "
                           "closer to full fine-tuning at the same rank, ~1.5× slower steps.")


class PromptTuningArgs(SpecModel):
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


class ResourcesArgs(SpecModel):
    """What a job needs from the worker that runs it; a worker claims only jobs it can satisfy."""

    devices: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto = a GPU when any live worker has one, else the CPU; cpu or cuda to insist.")
    gpus: int = Field(0, ge=0, le=64, description="GPUs the job needs on one worker (0 = as `devices` decides: one "
                      "GPU for cuda/auto-on-a-GPU worker, none for cpu).")
    processes: int = Field(1, ge=1, le=64, description="Training processes (ranks) launched together; > 1 runs "
                           "data-parallel through `accelerate launch` (on CPU: gloo).")
    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="How several processes share the work: ddp copies "
                                             "the model to each rank; fsdp shards it (full fine-tuning only).")
    min_gpu_memory_gb: float | None = Field(None, gt=0, le=10_000, description="Smallest GPU memory (GiB) per "
                                            "device the job needs; empty = no minimum.")
    labels: list[str] = Field(default_factory=list, max_length=16, description="Worker labels the job needs (all "
                              "of them), e.g. gpu-a100 or us-east; a worker sets its labels with "
                              "STUDIO_WORKER_LABELS.")

    _blank = field_validator("min_gpu_memory_gb", mode="before")(_none_if_blank)

    @model_validator(mode="after")
    def _consistent(self) -> "ResourcesArgs":
        if self.devices == "cpu" and self.gpus:
            raise ValueError(f"devices is cpu but gpus is {self.gpus}: set devices to cuda (or auto), or gpus to 0")
        return self


Quantization = Literal["none", "8bit", "4bit"]
GradientCheckpointing = Literal["auto", "on", "off"]


def quantization_field() -> Any:
    """``quantization`` of a training spec: QLoRA's frozen base in 8 or 4 bits."""
    return Field("none", description="Load the frozen base weights in 8 or 4 bits (bitsandbytes; 4bit = NF4 with "
                 "double quantization, bf16 compute) and train LoRA adapters on top: QLoRA. Needs a CUDA worker "
                 "and peft lora.")


def checkpointing_field() -> Any:
    """``gradient_checkpointing`` of a training spec."""
    return Field("auto", description="Recompute activations in the backward pass: less memory, ~30 % slower "
                 "steps. auto = on for GPU jobs on models of 1B parameters or more.")


def resources_field() -> Any:
    """``resources`` of every spec: what the worker that claims the job must have."""
    return Field(default_factory=ResourcesArgs, description="Devices, GPUs, processes and worker labels the job "
                 "needs.")

class SFTSpec(SpecModel):
    """Supervised fine-tuning on prompt → completion pairs (loss on the completion only)."""

    kind: Literal["sft"] = "sft"
    name: str = Field("", max_length=120, description="A name for the job and the model it produces.")
    base_model: str = Field("smollm2-135m-instruct", description="Model to start from (name, folder or hub id).")
    dataset: str = Field(DEMO_DIALOGSUM, description="`demo:dialogsum`, a JSONL/CSV/Parquet file (or a folder of "
                         "train/validation/test files) with the template's fields and the target column, or a hub "
                         "dataset `hub:org/name` (needs network access).")
    template: str = Field(DEFAULT_SUMMARY_TEMPLATE, description="Instruction template name or text with "
                          "{fields} from the data.")
    template_mix: list[str] = Field(default_factory=list, max_length=32, description="Several phrasings of the instruction (names "
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
    quantization: Quantization = quantization_field()
    gradient_checkpointing: GradientCheckpointing = checkpointing_field()
    resources: ResourcesArgs = resources_field()
    max_train_examples: int = Field(0, ge=0, le=MAX_ROWS, description="Use at most this many training rows "
                                    "(0 = all).")
    max_eval_examples: int = Field(64, ge=0, le=100_000, description="Validation rows used for eval loss "
                                   "(0 = none).")
    validation_share: float = Field(0.1, ge=0, le=0.5, description="When the dataset has no `validation` split, "
                                    "hold out this share of the training rows (shuffled with the seed) for eval "
                                    "loss; 0 = no validation.")
    long_examples: Literal["truncate", "skip", "refuse"] = Field(
        "truncate", description="Examples longer than train.max_length tokens: truncate = cut the end (an example "
        "whose prompt alone fills max_length has nothing left to learn and is dropped); skip = drop them; refuse "
        "= fail the job. The log and the data/* metrics count them.")
    resume_from_job: int | None = Field(None, ge=1, le=MAX_ID, description="Continue from the last checkpoint of this failed "
                                        "or cancelled SFT job (same base model and PEFT settings; it needs "
                                        "train.save_steps > 0 when it ran).")

    _blank_resume = field_validator("resume_from_job", mode="before")(_none_if_blank)


class EvalSpec(SpecModel):
    """Generate on a dataset split and score the outputs: ROUGE, BLEU and perplexity against references (when the
    data has them), toxicity, length, and a reward model's score (when one is given)."""

    kind: Literal["eval"] = "eval"
    name: str = Field("", max_length=120, description="A name for this evaluation run.")
    model: str = Field("smollm2-135m-instruct", description="Model or adapter to evaluate.")
    dataset: str = Field(DEMO_DIALOGSUM, description="`demo:dialogsum`, a JSONL/CSV/Parquet file or folder, or a hub "
                         "dataset `hub:org/name` (needs network access).")
    split: str = Field("test", description="Split to evaluate on.")
    template: str = Field(DEFAULT_SUMMARY_TEMPLATE, description="Instruction template name or text.")
    target_field: str | None = Field("summary", description="Column with the reference text; empty = the data has "
                                     "no references (e.g. held-out prompts): ROUGE, BLEU and perplexity are then "
                                     "skipped, toxicity, length and the reward model's score are still computed.")
    chat_format: bool = Field(True, description="Wrap prompts in the model's chat template.")
    max_examples: int = Field(40, ge=1, le=100_000, description="Evaluate the first N rows of the split.")
    samples_per_example: int = Field(1, ge=1, le=16, description="Completions sampled per example (needs "
                                     "sampling): toxicity is rare and noisy, so 4 samples of each held-out prompt "
                                     "give a much steadier mean than one. Each completion is scored on its own.")
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
    reward_model: str | None = Field(None, description="A reward model (registered name of a reward job's model, "
                                     "or a folder) that scores every prompt + completion: the `reward` metric, "
                                     "higher = more preferred. Empty = no reward score.")
    extra_metrics: list[str] = Field(default_factory=list, max_length=16, description="More metrics to compute with Hugging Face "
                                     "against the references, by name: " + ", ".join(EXTRA_METRICS) + " (computed "
                                     "offline; metric code from folders or the hub is not loaded).")
    resources: ResourcesArgs = resources_field()

    _blank_optional = field_validator("toxicity_model", "toxic_label", "target_field", "reward_model",
                                      mode="before")(_none_if_blank)

    @field_validator("extra_metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        # An allow-list checked by name: nothing is imported or run in the submitting (CLI/web) process.
        try:
            return list(dict.fromkeys(check_extra_metric(name) for name in value))
        except StudioError as exc:
            raise ValueError(str(exc).removeprefix("extra_metrics: ")) from None

    @model_validator(mode="after")
    def _references_for_extra_metrics(self) -> "EvalSpec":
        if self.extra_metrics and self.target_field is None:
            raise ValueError("extra_metrics compare the outputs with references: set target_field (the reference "
                             "column) or remove the extra metrics")
        if self.samples_per_example > 1 and not self.decoding.sampling:
            raise ValueError(f"samples_per_example is {self.samples_per_example}, but greedy or beam decoding gives "
                             "the same completion every time: turn sampling on (decoding.do_sample) or set 1")
        return self

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

class LabelCompletionsSpec(SpecModel):
    """Generate the missing completions of a labeling campaign (K per item from its model × decoding sources)."""

    kind: Literal["label_completions"] = "label_completions"
    name: str = Field("", max_length=120, description="A name for the job (default: the campaign's name).")
    campaign_id: int = Field(1, ge=1, le=MAX_ID, description="Id of the labeling campaign whose items need completions.")
    campaign: str = Field("", max_length=200, description="The campaign's name, for the job list (the id decides).")
    batch_size: int = Field(8, ge=1, le=256, description="Items generated together and written in one short "
                            "transaction; annotators can rank each batch as soon as it is written. 4–16 on a CPU.")
    precision: Literal["auto", "float32", "bfloat16", "int8"] = Field("auto", description="Inference precision "
                                                                      "(auto = bf16 on a GPU, fp32 on CPU).")
    resources: ResourcesArgs = resources_field()


# --- RLHF jobs -------------------------------------------------------------------------------------

DEMO_PROVOCATIVE = "demo:provocative"


class PreferenceDataArgs(SpecModel):
    campaign: str | None = Field(None, description="Labeling campaign (id or name) whose rankings give the pairs. "
                                 "Give this or `dataset`.")
    dataset: str | None = Field(None, description="A preference file or folder (JSONL/CSV/Parquet) with columns "
                                "prompt, chosen, rejected and optionally margin. Give this or `campaign`.")
    strategy: Literal["all", "best-vs-rest", "best-vs-worst"] = Field(
        "all", description="Pairs from a campaign ranking of K completions: all C(K,2), best vs each other, or best "
        "vs worst only.")
    consensus: bool = Field(False, description="One consensus ranking per item instead of every annotator's.")
    use_margin: bool = Field(False, description="Subtract each pair's margin (rank gap, or the file's margin "
                             "column) inside the loss: clearer preferences must be separated by more.")
    test_size: float = Field(0.2, ge=0, lt=1, description="Share of prompts held out to measure pairwise accuracy "
                             "(split by prompt, so one ranking never straddles the split).")
    min_pairs: int = Field(8, ge=2, le=MAX_ROWS, description="Refuse the job with fewer training pairs than this.")
    chat_format: bool = Field(True, description="Show prompt and completion to the model in its chat template.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the train/test split.")

    _blank = field_validator("campaign", "dataset", mode="before")(_none_if_blank)

    @model_validator(mode="after")
    def _one_source(self) -> "PreferenceDataArgs":
        # Neither is refused before queueing (jobs.rl.checks), so the form can start from the defaults.
        if self.campaign is not None and self.dataset is not None:
            raise ValueError("give either campaign (a labeling campaign) or dataset (a preference file), not both")
        return self


def _preference_train_args() -> TrainArgs:
    return TrainArgs(max_steps=40, learning_rate=1e-4, batch_size=8, max_length=256, warmup_ratio=0.0)


class RewardSpec(SpecModel):
    """Train a scalar reward model r(prompt, completion) on preference pairs: loss −log σ(r_chosen − r_rejected)."""

    kind: Literal["reward"] = "reward"
    name: str = Field("", max_length=120, description="A name for the job and the reward model it produces.")
    base_model: str = Field("smollm2-135m-instruct", description="Model to start from: a base model, or an SFT "
                            "checkpoint or adapter (its weights are merged first). A new one-output score head "
                            "is added.")
    data: PreferenceDataArgs = Field(default_factory=PreferenceDataArgs, description="Where the preference pairs "
                                     "come from and how they are split.")
    peft: Literal["lora", "none"] = Field("none", description="none = train every weight (best reward models); "
                                          "lora = adapters plus the score head (merged into the saved model).")
    lora: LoraArgs = Field(default_factory=LoraArgs)
    train: TrainArgs = Field(default_factory=_preference_train_args)
    quantization: Quantization = quantization_field()
    gradient_checkpointing: GradientCheckpointing = checkpointing_field()
    resources: ResourcesArgs = resources_field()
    group_by_ranking: bool = Field(False, description="Keep all pairs of one prompt's ranking in the same batch, "
                                   "each weighted 1/C(K,2), so a ranking counts once (InstructGPT: avoids "
                                   "overfitting to completions seen in many pairs).")


class DPOSpec(SpecModel):
    """Direct preference optimization with TRL's DPOTrainer: learn from pairs without a reward model or PPO."""

    kind: Literal["dpo"] = "dpo"
    name: str = Field("", max_length=120, description="A name for the job and the model it produces.")
    base_model: str = Field("smollm2-135m-instruct", description="Policy to start from (usually the SFT model); "
                            "it is also the frozen reference.")
    data: PreferenceDataArgs = Field(default_factory=PreferenceDataArgs, description="Where the preference pairs "
                                     "come from and how they are split.")
    beta: float = Field(0.1, gt=0, le=10, description="Strength of the implicit KL penalty: 0.1 is standard; "
                        "higher stays closer to the reference.")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "apo_zero", "sigmoid_norm"] = Field(
        "sigmoid", description="sigmoid = the DPO paper; ipo = squared loss, robust to noisy labels; hinge = SLiC.")
    peft: Literal["lora", "none"] = Field("lora", description="lora = adapters (the reference is the base with "
                                          "adapters off: one model in memory); none = full fine-tuning.")
    lora: LoraArgs = Field(default_factory=LoraArgs)
    train: TrainArgs = Field(default_factory=_preference_train_args)
    quantization: Quantization = quantization_field()
    gradient_checkpointing: GradientCheckpointing = checkpointing_field()
    resources: ResourcesArgs = resources_field()


class RewardTermArgs(SpecModel):
    """One reward source and its weight in the reward."""

    source: Literal["toxicity", "reward_model", "classifier"] = Field(
        "toxicity", description="toxicity = 1 − p(toxic) from the packaged profanity classifier (offline); "
        "reward_model = a reward model trained by a reward job; classifier = one class's logit of a text classifier "
        "(e.g. a hate-speech model's 'nothate').")
    model: str | None = Field(None, description="The reward model (registered name or folder) or the classifier "
                              "(folder or hub id); empty for toxicity.")
    class_label: str | None = Field(None, description="Classifier only: the class whose logit is the reward (name "
                                    "or index), e.g. nothate.")
    score_completion_only: bool = Field(False, description="Score the completion alone instead of prompt + "
                                        "completion (toxicity and classifiers read the completion alone always).")
    weight: float = Field(1.0, ge=-100, le=100, allow_inf_nan=False, description="This source's multiplier in "
                          "the reward (1 when it is the only source).")

    _blank = field_validator("model", "class_label", mode="before")(_none_if_blank)

    @model_validator(mode="after")
    def _needs_model(self) -> "RewardTermArgs":
        if self.source != "toxicity" and self.model is None:
            raise ValueError(f"source {self.source} needs `model`")
        if self.source == "classifier" and self.class_label is None:
            raise ValueError("a classifier reward needs class_label: the class whose logit is the reward")
        return self


class RewardSourceArgs(RewardTermArgs):
    plus: list[RewardTermArgs] = Field(
        default_factory=list, max_length=8, description="Further sources added to the reward: reward = weight × "
        "this source + Σ weight × each source listed here. E.g. a reward model trained on a toxicity-ranking "
        "campaign plus 0.5 × the toxicity classifier. Mind the scales: toxicity is 0–1, a reward model's logit "
        "is unbounded.")

    def terms(self) -> list[RewardTermArgs]:
        """Every source of the reward, this one first."""
        return [self, *self.plus]


class RLLoopArgs(SpecModel):
    """The optimisation loop of an online RL method (PPO, GRPO): steps, batch, step size, seed, precision."""

    max_steps: int = Field(20, ge=1, le=100_000, description="Optimizer iterations (one rollout batch and its "
                           "update each). Tens show a trend on a CPU; real runs use thousands.")
    batch_size: int = Field(8, ge=1, le=1024, description="Completions generated and scored per step (GRPO: "
                            "prompts × num_generations, a multiple of num_generations).")
    learning_rate: float = Field(5e-5, gt=0, le=1.0, description="LoRA: 1e-5–2e-4; full fine-tuning: 1e-6–1e-5.")
    seed: int = Field(42, ge=0, le=MAX_SEED, description="Seed for sampling and data order.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto = bf16 on a GPU, fp32 on CPU.")


class PPOArgs(RLLoopArgs):
    mini_batch_size: int = Field(4, ge=1, le=1024, description="Completions per gradient step inside a PPO epoch "
                                 "(at most batch_size).")
    ppo_epochs: int = Field(4, ge=1, le=32, description="Passes over each rollout batch: 2–4; more reuses the data "
                            "harder and clips more.")
    clip_range: float = Field(0.2, gt=0, le=1, description="ε of the clipped ratio: 0.1–0.3 (0.2 is standard).")
    clip_range_value: float = Field(0.2, gt=0, le=100, description="Clip of the value update around the old value.")
    vf_coef: float = Field(0.1, ge=0, le=100, description="c1, weight of the value loss: 0.1–1.")
    entropy_coef: float = Field(0.0, ge=0, le=10, description="c2, entropy bonus: 0–0.01; keeps sampling diverse.")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount per token; 1.0 for completions scored at the end.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE λ: 0.95 trades bias (0) against variance (1).")
    kl_coef: float = Field(0.05, ge=0, le=100, description="β, initial weight of the per-token KL penalty: 0.01–0.2.")
    adaptive_kl: bool = Field(True, description="Adjust β towards kl_target (Ziegler et al.); off = fixed β.")
    kl_target: float = Field(4.0, ge=-1000, le=1000, description="Target KL per completion (nats) for the adaptive β; 1–6 for short "
                             "completions.")
    kl_horizon: int = Field(1000, ge=1, le=MAX_ROWS, description="Completions over which β may change by 20 %; shorter reacts "
                            "faster.")
    kl_estimator: Literal["k1", "k3"] = Field("k1", description="k1 = log π − log π_ref (classic); k3 = non-negative, "
                                              "lower-variance estimate.")
    whiten_rewards: bool = Field(False, description="Scale per-token rewards to unit variance per batch (keeps "
                                 "their mean).")
    score_clip: float | None = Field(None, gt=0, le=1e6, description="Clip scores to ±this before use (empty = off).")
    max_grad_norm: float = Field(1.0, gt=0, le=1e6, description="Gradient clipping.")

    _blank = field_validator("score_clip", mode="before")(_none_if_blank)

    @model_validator(mode="after")
    def _workable(self) -> "PPOArgs":
        if self.mini_batch_size > self.batch_size:
            raise ValueError(f"mini_batch_size ({self.mini_batch_size}) is larger than batch_size "
                             f"({self.batch_size}): a mini-batch is a slice of one rollout batch")
        if self.adaptive_kl and self.kl_target <= 0:
            raise ValueError(f"kl_target must be above 0 (got {self.kl_target}): it is the KL per completion the "
                             "adaptive β aims for; use adaptive_kl false for a fixed β")
        return self


def ppo_decoding() -> DecodingConfig:
    return DecodingConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=32)


class PolicyPromptArgs(SpecModel):
    """What an online RL job (PPO, GRPO) improves, on which prompts, scored by what."""

    kind: str
    name: str = Field("", max_length=120, description="A name for the job and the policy it produces.")
    policy_model: str = Field("smollm2-135m-instruct", description="Model to improve: a base or SFT model, or an SFT "
                              "LoRA adapter (merged first).")
    prompts: str = Field(DEMO_PROVOCATIVE, description="Prompt dataset: demo:provocative (prompts inviting rude "
                         "answers) or a JSONL/CSV/Parquet file or folder with a prompt column.")
    prompt_field: str = Field("prompt", description="Column holding the prompt text.")
    split: str = Field("train", description="Split whose prompts are used for rollouts.")
    chat_format: bool = Field(True, description="Wrap prompts in the model's chat template.")
    peft: Literal["lora", "none"] = Field("lora", description="lora = adapters, the KL reference is the policy with "
                                          "its adapters off (one model in memory); none = full-parameter training.")
    lora: LoraArgs = Field(default_factory=lambda: LoraArgs(dropout=0.0))
    reward: RewardSourceArgs = Field(default_factory=RewardSourceArgs, description="What scores each completion.")
    quantization: Quantization = quantization_field()
    gradient_checkpointing: GradientCheckpointing = checkpointing_field()
    resources: ResourcesArgs = resources_field()


class PPOSpec(PolicyPromptArgs):
    """Our own PPO with a KL guard: the policy learns to raise a reward while a per-token penalty keeps it close
    to the frozen reference."""

    kind: Literal["ppo"] = "ppo"
    reference_model: str | None = Field(None, description="Frozen reference for the KL penalty; empty = the policy's "
                                        "starting model. With LoRA it must be that model (the reference is the "
                                        "policy with its adapters off).")
    decoding: DecodingConfig = Field(default_factory=ppo_decoding, description="How rollouts are sampled; "
                                     "log-probabilities use the same temperature.")
    ppo: PPOArgs = Field(default_factory=PPOArgs, description="PPO hyperparameters.")
    eval_split: str = Field("test", description="Split of held-out prompts for evaluation and stopping.")
    eval_prompts: int = Field(16, ge=0, le=10_000, description="Held-out prompts scored at the start, every "
                              "eval_steps and at the end (0 = none).")
    eval_samples: int = Field(1, ge=1, le=16, description="Completions sampled per held-out prompt at each "
                              "evaluation: toxicity is rare and noisy, so 4 gives a much steadier mean than 1.")
    eval_steps: int = Field(0, ge=0, le=MAX_STEPS, description="Evaluate on held-out prompts every N steps (0 = start and end).")
    stop_reward: float | None = Field(None, ge=-1e6, le=1e6, description="Stop once the held-out mean reward reaches this.")
    stop_toxicity: float | None = Field(None, ge=0, le=1, description="Stop once held-out mean toxicity is at or "
                                        "below this.")
    samples_per_step: int = Field(3, ge=0, le=64, description="Completions with their rewards written to the log "
                                  "and samples.jsonl each step.")
    keep_best: bool = Field(False, description="Save the held-out evaluation with the highest mean reward whose KL "
                            "per completion is within ppo.kl_target, instead of the last step (needs eval_prompts "
                            "and eval_steps). The reward often peaks before the KL overshoots.")

    _blank = field_validator("reference_model", "stop_reward", "stop_toxicity", mode="before")(_none_if_blank)

    @model_validator(mode="after")
    def _rollouts(self) -> "PPOSpec":
        d = self.decoding
        if not d.sampling:
            raise ValueError("decoding must sample (do_sample true, temperature above 0): PPO learns from the "
                             "variety of sampled completions")
        if d.num_beams != 1 or d.num_return_sequences != 1:
            raise ValueError("decoding: PPO samples one completion per prompt (num_beams 1, num_return_sequences 1)")
        if d.stop:
            raise ValueError("decoding.stop is not supported by PPO: completions end at the end-of-sequence token "
                             "or max_new_tokens")
        if (self.stop_reward is not None or self.stop_toxicity is not None) and not self.eval_prompts:
            raise ValueError("stop_reward / stop_toxicity are measured on held-out prompts: set eval_prompts > 0")
        if self.keep_best and not (self.eval_prompts and self.eval_steps):
            raise ValueError("keep_best picks among held-out evaluations: set eval_prompts > 0 and eval_steps > 0 "
                             "(e.g. every 10 steps)")
        return self


class GRPOSpec(RLLoopArgs, PolicyPromptArgs):
    """Group-relative policy optimization with TRL's GRPOTrainer: several completions per prompt, each scored by
    the reward source; a completion's advantage is its score against its group's mean (no value head)."""

    kind: Literal["grpo"] = "grpo"
    # GRPO's group-normalised advantages tolerate a larger step than PPO's (TRL's LoRA examples use 1e-4).
    learning_rate: float = Field(1e-4, gt=0, le=1.0, description="LoRA: 1e-5–2e-4; full fine-tuning: 1e-6–1e-5.")
    num_generations: int = Field(4, ge=2, le=64, description="Completions per prompt (the group): 4–16; the "
                                 "advantage needs differences inside a group.")
    beta: float = Field(0.04, ge=0, le=10, description="KL coefficient against the reference; 0 = no KL term (and "
                        "no reference pass).")
    temperature: float = Field(1.0, gt=0, le=5, description="Sampling temperature of the group's completions.")
    max_new_tokens: int = Field(32, ge=1, le=4096, description="Longest completion.")
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = Field("dapo", description="How token losses are "
                                                                   "averaged: dapo/dr_grpo avoid grpo's length bias.")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="Divide advantages by the std "
                                                             "of the group, of the batch, or not at all (Dr. GRPO).")

    @model_validator(mode="after")
    def _groups(self) -> "GRPOSpec":
        if self.batch_size % self.num_generations:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                             f"({self.num_generations}): each step holds whole groups")
        return self
