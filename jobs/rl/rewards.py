"""Reward sources for PPO: each turns (prompt, completion) pairs into one scalar per completion.

- ``ToxicityReward``: 1 − p(toxic) from the packaged profanity classifier (offline default; the detox lab).
- ``RewardModelReward``: a reward model trained by a ``reward`` job (one-output sequence classifier), reading the
  prompt and completion in the format it was trained on (``reward_format.json`` in its folder).
- ``ClassifierReward``: one class's logit of any text classifier — the seeds' lab uses a hate-speech model's
  "not hate" logit.

A source is called as ``source(prompts, completions, completion_ids)``; the token ids let tests define a reward
as an exact function of what the policy emitted. ``load_reward_source`` builds one from a spec; a spec that lists
several sources (``reward.plus``) gets their ``WeightedSum``.
"""

import json
from pathlib import Path

import torch

from backend.errors import StudioError

REWARD_FORMAT_FILE = "reward_format.json"


def pair_text(tokenizer, prompt: str, completion: str, chat: bool) -> str:
    """How a reward model sees a prompt and its completion (the same in reward training and in PPO)."""
    if chat and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return f"{prompt}\n{completion}"


class ToxicityReward:
    name = "1 − p(toxic) (profanity classifier)"

    def __call__(self, prompts: list[str], completions: list[str], completion_ids=None) -> list[float]:
        from backend.metrics.scorers import toxicity_scores

        return [1.0 - p for p in toxicity_scores(completions)]


class _SequenceClassifier:
    """A sequence classifier in eval mode, scoring texts in batches; ``column`` picks the output logit."""

    def __init__(self, ref: str, device: str, column: int = 0, batch_size: int = 16, max_length: int = 512):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(ref)
            self.model = AutoModelForSequenceClassification.from_pretrained(ref).to(device).eval()
        except (OSError, ValueError) as exc:
            raise StudioError(f"Could not load the reward model '{ref}': {str(exc).splitlines()[0][:200]}") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if getattr(self.model.config, "pad_token_id", None) is None:  # decoder classifiers find the last token by it
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.padding_side = "right"
        self.device, self.column, self.batch_size, self.max_length = device, column, batch_size, max_length

    @torch.no_grad()
    def logits(self, texts: list[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            out.extend(self.model(**batch).logits[:, self.column].float().tolist())
        return out


class RewardModelReward(_SequenceClassifier):
    def __init__(self, path: str, device: str, completion_only: bool = False):
        super().__init__(path, device)
        fmt_file = Path(path) / REWARD_FORMAT_FILE
        self.chat = json.loads(fmt_file.read_text(encoding="utf-8")).get("chat_format", True) \
            if fmt_file.is_file() else True
        self.completion_only = completion_only
        self.name = f"reward model {Path(path).name}"

    def __call__(self, prompts: list[str], completions: list[str], completion_ids=None) -> list[float]:
        texts = completions if self.completion_only else \
            [pair_text(self.tokenizer, p, c, self.chat) for p, c in zip(prompts, completions, strict=True)]
        return self.logits(texts)


class ClassifierReward(_SequenceClassifier):
    def __init__(self, ref: str, class_label: str, device: str):
        from backend.metrics.scorers import toxic_label_index

        super().__init__(ref, device)
        # the same lookup the toxicity scorer uses: a class by name (case-insensitive) or index
        self.column = toxic_label_index(dict(self.model.config.id2label), class_label)
        self.name = f"{Path(ref).name}: logit of {self.model.config.id2label[self.column]}"

    def __call__(self, prompts: list[str], completions: list[str], completion_ids=None) -> list[float]:
        return self.logits(completions)


class WeightedSum:
    """Σ weight × source: e.g. a reward model that knows what the annotators preferred plus the classifier that
    knows profanity, so neither one's blind spots alone decide the reward."""

    def __init__(self, parts: list[tuple[float, object]]):
        self.parts = parts
        self.name = " + ".join(f"{weight:g} × {getattr(source, 'name', 'source')}" for weight, source in parts)

    def __call__(self, prompts: list[str], completions: list[str], completion_ids=None) -> list[float]:
        total = [0.0] * len(completions)
        for weight, source in self.parts:
            for i, score in enumerate(source(prompts, completions, completion_ids)):
                total[i] += weight * score
        return total


def _load_term(term, reward_path: str | None, device: str):
    if term.source == "toxicity":
        return ToxicityReward()
    if term.source == "reward_model":
        return RewardModelReward(reward_path or term.model, device, term.score_completion_only)
    return ClassifierReward(term.model, term.class_label, device)


def load_reward_source(reward_args, reward_paths: dict[str, str], device: str):
    """The reward a PPO/GRPO spec asks for. ``reward_paths`` maps each ``reward_model`` term's name to its resolved
    folder. One source of weight 1 is returned as itself; anything else as a ``WeightedSum``."""
    parts = [(term.weight, _load_term(term, reward_paths.get(term.model or ""), device))
             for term in reward_args.terms()]
    if len(parts) == 1 and parts[0][0] == 1.0:
        return parts[0][1]
    return WeightedSum(parts)


def resolve_reward_paths(session, reward_args) -> dict[str, str]:
    """Each reward-model term's registered name → its folder (read in the job's DB session)."""
    from backend.models.store import resolve

    return {term.model: resolve(session, term.model).path for term in reward_args.terms()
            if term.source == "reward_model"}
