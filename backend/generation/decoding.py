"""The typed decoding configuration shared by the playground, labeling, jobs and evaluation.

Field names follow transformers' ``GenerationConfig`` so a setting means the same thing in the
studio, in ``studio generate`` flags and in a plain ``model.generate`` call. Frequency and presence
penalties are OpenAI-style and additive (see ``penalties.py``); stop sequences end a completion and
are not returned, as in the OpenAI API.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DecodingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    do_sample: bool = Field(False, description="Sample from the distribution instead of always taking the most "
                            "likely token (greedy). Greedy is repeatable but prone to repeating itself.")
    temperature: float = Field(1.0, ge=0.0, le=5.0, description="Divides the logits before softmax: below 1 "
                               "sharpens the distribution (safer), above 1 flattens it (more creative). 0 = greedy.")
    top_k: int = Field(0, ge=0, le=1000, description="Sample only among the k most likely tokens (0 = off). "
                       "k=3 over cake/donut/banana/apple never picks apple.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling: the smallest set of most likely "
                         "tokens whose probabilities add up to at least p (1 = off). p=0.3 keeps cake+donut.")
    min_p: float = Field(0.0, ge=0.0, lt=1.0, description="Drop tokens less likely than min_p × the top "
                         "token's probability (0 = off).")
    typical_p: float = Field(1.0, gt=0.0, le=1.0, description="Locally typical sampling mass (1 = off).")
    repetition_penalty: float = Field(1.0, gt=0.0, le=3.0, description="Multiplicative penalty on tokens already "
                                      "in the text (1 = off, 1.1–1.3 typical).")
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0, description="Subtracted from a token's logit once per "
                                     "previous occurrence in the completion (OpenAI-style).")
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0, description="Subtracted once from the logit of every "
                                    "token already in the completion (OpenAI-style).")
    no_repeat_ngram_size: int = Field(0, ge=0, le=10, description="Forbid repeating any n-gram of this size (0 = off).")
    max_new_tokens: int = Field(128, ge=1, le=4096, description="Upper bound on generated tokens; the model may stop "
                                "earlier at its end-of-sequence token or a stop sequence.")
    min_new_tokens: int = Field(0, ge=0, le=4096, description="Suppress end-of-sequence before this many tokens.")
    num_beams: int = Field(1, ge=1, le=16, description="Beam search width (1 = off). Keeps the n most likely "
                           "partial sequences; slower, often blander.")
    num_return_sequences: int = Field(1, ge=1, le=16, description="Completions to return for the prompt.")
    stop: list[str] = Field(default_factory=list, max_length=8, description="Strings that end the completion; "
                            "they are not included in the output.")
    seed: int | None = Field(None, ge=0, description="Fixes the random draws so a sampled completion repeats.")

    @model_validator(mode="after")
    def _consistent(self) -> "DecodingConfig":
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens ({self.min_new_tokens}) cannot exceed max_new_tokens "
                             f"({self.max_new_tokens}).")
        if self.num_return_sequences > 1 and not self.sampling and self.num_return_sequences > self.num_beams:
            raise ValueError(f"Greedy/beam decoding can return at most num_beams ({self.num_beams}) different "
                             f"completions, not {self.num_return_sequences}: turn on sampling or raise num_beams.")
        if any(not s for s in self.stop):
            raise ValueError("Stop sequences cannot be empty strings.")
        return self

    @property
    def sampling(self) -> bool:
        """Sampling is on and meaningful (temperature 0 means greedy, as in most APIs)."""
        return self.do_sample and self.temperature > 0

    def generate_kwargs(self) -> dict[str, Any]:
        """Arguments for ``model.generate`` (penalties and stops are handled by the engine)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens or None,
            "num_beams": self.num_beams,
            "num_return_sequences": self.num_return_sequences,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size or None,
            "do_sample": self.sampling,
        }
        if self.sampling:
            kwargs.update(temperature=self.temperature, top_k=self.top_k or None, top_p=self.top_p,
                          min_p=self.min_p or None, typical_p=self.typical_p)
        else:  # keep GenerationConfig from warning about sampling flags in greedy mode
            kwargs.update(temperature=None, top_k=None, top_p=None)
        return {k: v for k, v in kwargs.items() if v is not None or k in ("temperature", "top_k", "top_p")}


PRESETS: dict[str, DecodingConfig] = {
    "deterministic": DecodingConfig(do_sample=False, repetition_penalty=1.1),
    "balanced": DecodingConfig(do_sample=True, temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1),
    "creative": DecodingConfig(do_sample=True, temperature=1.1, top_p=0.95, top_k=0, repetition_penalty=1.05),
}
