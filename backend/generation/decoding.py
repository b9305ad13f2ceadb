"""The typed decoding configuration shared by the playground, labeling, jobs and evaluation.

Field names follow transformers' ``GenerationConfig`` so a setting means the same thing in the
studio, in ``studio generate`` flags and in a plain ``model.generate`` call. Frequency and presence
penalties are OpenAI-style and additive (see ``penalties.py``); stop sequences end a completion and
are not returned, as in the OpenAI API.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DecodingConfig(BaseModel):
    # Infinity/NaN are refused; every number has an upper bound, stop sequences a length.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=200)

    do_sample: bool = Field(False, description="Off = greedy: always take the most likely token (cake at 20% beats "
                            "donut at 10%) — repeatable, good for short answers, prone to repeating itself. On = "
                            "weighted random choice: banana at 2% is picked 2% of the time — more varied, can wander.")
    temperature: float = Field(1.0, ge=0.0, le=5.0, description="Divides the logits before softmax. Below 1 "
                               "sharpens the distribution (cake's 20% grows: safer, more repetitive); above 1 "
                               "flattens it (banana gains: more creative, more mistakes); 1 leaves it unchanged; "
                               "0 = greedy. Try 0.7 for answers, 1.0–1.2 for brainstorming. Sampling only.")
    top_k: int = Field(0, ge=0, le=1000, description="Sample only among the k most likely tokens, renormalised "
                       "(0 = off). k=3 over cake/donut/banana/apple keeps cake, donut, banana: apple is never "
                       "picked. 40–50 is common; 1 = greedy. Sampling only.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling: keep the smallest set of most likely "
                         "tokens whose probabilities add up to at least p (1 = off). p=0.3 keeps cake (0.20) + "
                         "donut (0.10). Adapts to the model's confidence, unlike top-k; 0.9–0.95 is common.")
    min_p: float = Field(0.0, ge=0.0, lt=1.0, description="Drop tokens less likely than min_p × the top token's "
                         "probability (0 = off). min_p=0.1 with cake at 20% drops everything under 2% (banana "
                         "survives, barely). 0.05–0.1 keeps high temperatures coherent. Sampling only.")
    typical_p: float = Field(1.0, gt=0.0, le=1.0, description="Locally typical sampling: keep the tokens whose "
                             "surprise is closest to the distribution's average, up to this mass (1 = off; 0.9–0.95 "
                             "when used). Sampling only.")
    repetition_penalty: float = Field(1.0, gt=0.0, le=3.0, description="Multiplicative penalty on every token "
                                      "already in the text, prompt included: a positive logit is divided by it, a "
                                      "negative one multiplied (1 = off, 1.1–1.3 typical; above 1.5 garbles text).")
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0, description="OpenAI-style, additive: subtracted from a "
                                     "token's logit once per time it already appears in the completion, so the "
                                     "third 'very' costs twice the second. 0 = off; 0.1–1 to curb loops.")
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0, description="OpenAI-style, additive: subtracted once from "
                                    "the logit of every token already in the completion, however often it appeared "
                                    "— nudges towards new words and topics. 0 = off; 0.1–1 typical.")
    no_repeat_ngram_size: int = Field(0, ge=0, le=10, description="Never repeat any n-gram of this many tokens "
                                      "(0 = off). 3 stops 'the cat sat the cat sat'; too small (1–2) forbids "
                                      "ordinary words like 'the' from recurring.")
    max_new_tokens: int = Field(128, ge=1, le=4096, description="Upper bound on generated tokens (about 4 "
                                "characters of English each) — a cap, not a target: the model may stop earlier at "
                                "its end-of-sequence token or a stop sequence. Prompt + this must fit the context "
                                "window.")
    min_new_tokens: int = Field(0, ge=0, le=4096, description="Forbid the end-of-sequence token before this many "
                                "tokens, for answers that end too early (0 = off). Stop sequences still apply.")
    num_beams: int = Field(1, ge=1, le=16, description="Beam search width (1 = off). Keeps the n most likely partial "
                           "sequences and returns the one with the highest joint probability: more consistent, "
                           "slower (4 beams ≈ 1.5–2× the time), often blander.")
    num_return_sequences: int = Field(1, ge=1, le=16, description="Completions to return for the prompt, generated "
                                      "as one batch (needs sampling, or at most num_beams with beam search). 4–5 "
                                      "is what a ranking campaign wants.")
    stop: list[str] = Field(default_factory=list, max_length=8, description="Strings that end the completion as "
                            "soon as they are generated; they are not included in the output (e.g. '\\n\\n' or "
                            "'Human:'). Up to 8.")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Fixes the random draws so a sampled completion repeats "
                             "exactly on the same model, settings and hardware (empty = a new draw each time).")

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


PRESETS: dict[str, DecodingConfig] = {  # UI presets; PRESET_HELP explains each
    "deterministic": DecodingConfig(do_sample=False, repetition_penalty=1.1),
    "balanced": DecodingConfig(do_sample=True, temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1),
    "creative": DecodingConfig(do_sample=True, temperature=1.1, top_p=0.95, top_k=0, repetition_penalty=1.05),
    "beam-search": DecodingConfig(do_sample=False, num_beams=4, no_repeat_ngram_size=3),
}

PRESET_HELP: dict[str, str] = {
    "deterministic": "Greedy with a light repetition penalty: the same prompt always gives the same text.",
    "balanced": "Mild sampling (T 0.7, top-p 0.9, top-k 50): varied but on topic — a good default for chat.",
    "creative": "Hotter sampling (T 1.1, top-p 0.95): more surprising wording, more mistakes.",
    "beam-search": "4 beams, no repeated 3-grams: the most probable whole sequence; consistent, slower, blander.",
}


def decoding_warnings(cfg: DecodingConfig) -> list[str]:
    """Settings that are valid but do nothing or interact surprisingly, worded for the user."""
    notes = []
    sampling_only = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0}
    changed = [name for name, off in sampling_only.items() if getattr(cfg, name) != off]
    if not cfg.do_sample and changed:
        notes.append(f"{', '.join(changed)} only act when sampling is on: greedy/beam decoding ignores them.")
    if cfg.do_sample and cfg.temperature == 0:
        notes.append("Temperature 0 means greedy decoding: the sampling settings are ignored.")
    if cfg.sampling and cfg.top_k == 1:
        notes.append("top_k=1 keeps only the most likely token: this is greedy decoding.")
    if cfg.num_beams > 1 and cfg.sampling:
        notes.append("Sampling with beams is beam-sampling: slower than either alone and rarely needed.")
    if cfg.seed is None and cfg.sampling:
        notes.append("No seed: each run draws differently. Set a seed to reproduce a completion.")
    if 0 < cfg.no_repeat_ngram_size <= 2:
        notes.append(f"no_repeat_ngram_size={cfg.no_repeat_ngram_size} also forbids common words and pairs "
                     "from recurring; 3 or more is usual.")
    return notes
