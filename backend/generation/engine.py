"""The one generation engine: batched for many prompts, streamed for the UI.

Every path goes through ``model.generate`` with a ``DecodingConfig``; the engine adds what
transformers lacks (OpenAI-style frequency/presence penalties, stop sequences that are cut from the
output) and measures tokens/s. torch/transformers are imported lazily: this module is imported by
pages.
"""

import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from backend.errors import StudioError
from backend.generation.decoding import DecodingConfig

if TYPE_CHECKING:
    from backend.models.loader import LoadedModel


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str  # "stop" (EOS or stop sequence) or "length"
    first_token_seconds: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_second": round(self.tokens_per_second, 2)}


@dataclass
class StreamChunk:
    """A piece of streamed text; the last chunk carries the final ``result``."""

    delta: str
    result: GenerationResult | None = None


def format_prompt(tokenizer, text: str, chat: bool, system: str | None = None) -> str:
    """Wrap a user message in the model's chat template (chat mode) or pass raw text through."""
    if not chat:
        return text
    if not getattr(tokenizer, "chat_template", None):
        raise StudioError("This model has no chat template: switch to raw-completion mode.")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop sequence; the stop itself is not returned."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def check_fits(loaded: "LoadedModel", prompt_tokens: int, cfg: DecodingConfig) -> None:
    if prompt_tokens == 0:
        raise StudioError("The prompt is empty: type something for the model to continue.")
    window = loaded.context_window
    if prompt_tokens + cfg.max_new_tokens > window:
        raise StudioError(
            f"The prompt has {prompt_tokens} tokens and max_new_tokens is {cfg.max_new_tokens}, but the model's "
            f"context window is {window} tokens: shorten the prompt or lower max_new_tokens."
        )


def _logits_processors(cfg: DecodingConfig, prompt_len: int) -> list:
    if not (cfg.frequency_penalty or cfg.presence_penalty):
        return []
    from backend.generation.penalties import FrequencyPresencePenalty

    return [FrequencyPresencePenalty(cfg.frequency_penalty, cfg.presence_penalty, prompt_len)]


def generate_kwargs(loaded: "LoadedModel", cfg: DecodingConfig, prompt_len: int) -> dict[str, Any]:
    from transformers import LogitsProcessorList, StoppingCriteriaList

    from backend.generation.penalties import StopOnSequences

    kwargs = cfg.generate_kwargs()
    kwargs.update(
        pad_token_id=loaded.tokenizer.pad_token_id,
        logits_processor=LogitsProcessorList(_logits_processors(cfg, prompt_len)),
    )
    if cfg.stop:  # stop early; the text is cut again afterwards because a stop can end mid-token
        kwargs["stopping_criteria"] = StoppingCriteriaList([StopOnSequences(loaded.tokenizer, cfg.stop, prompt_len)])
    return kwargs


def _seed(cfg: DecodingConfig) -> None:
    if cfg.seed is not None:
        import torch

        torch.manual_seed(cfg.seed)


def generate(loaded: "LoadedModel", prompts: list[str], cfg: DecodingConfig, batch_size: int = 8) -> list[list[GenerationResult]]:
    """Generate ``cfg.num_return_sequences`` completions for each prompt, ``batch_size`` prompts at a time.

    Returns:
        One list of results per prompt, in prompt order.
    """
    import torch

    tok, model = loaded.tokenizer, loaded.model
    lengths = [len(tok(p, add_special_tokens=False).input_ids) for p in prompts]
    for n in lengths:
        check_fits(loaded, n, cfg)
    results: list[list[GenerationResult]] = []
    eos_ids = set(loaded.eos_token_ids)
    _seed(cfg)
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(loaded.device)
        prompt_len = enc.input_ids.shape[1]
        began = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**enc, **generate_kwargs(loaded, cfg, prompt_len))
        seconds = time.perf_counter() - began
        new_tokens = out[:, prompt_len:]
        per_row = seconds / len(batch)  # a batch shares its time; report each prompt's share
        for i, _ in enumerate(batch):
            rows = []
            for j in range(cfg.num_return_sequences):
                ids = new_tokens[i * cfg.num_return_sequences + j].tolist()
                n_gen = next((k + 1 for k, t in enumerate(ids) if t in eos_ids), len(ids))
                text, stopped = cut_at_stop(tok.decode(ids[:n_gen], skip_special_tokens=True), cfg.stop)
                hit_eos = bool(ids) and ids[n_gen - 1] in eos_ids
                rows.append(GenerationResult(
                    text=text, prompt_tokens=lengths[start + i], completion_tokens=n_gen, seconds=per_row,
                    finish_reason="stop" if (stopped or hit_eos) else "length", settings=cfg.model_dump(),
                ))
            results.append(rows)
    return results


def stream(loaded: "LoadedModel", prompt: str, cfg: DecodingConfig) -> Iterator[StreamChunk]:
    """Stream one completion's text as it is produced; the final chunk holds the full result."""
    import torch
    from transformers import TextIteratorStreamer

    if cfg.num_return_sequences != 1 or cfg.num_beams != 1:
        raise StudioError("Streaming shows one completion: use num_beams=1 and num_return_sequences=1.")
    tok, model = loaded.tokenizer, loaded.model
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(loaded.device)
    prompt_len = enc.input_ids.shape[1]
    check_fits(loaded, prompt_len, cfg)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    kwargs = {**enc, **generate_kwargs(loaded, cfg, prompt_len), "streamer": streamer}
    output: dict[str, Any] = {}

    def _run() -> None:
        try:
            _seed(cfg)
            with torch.inference_mode():
                output["ids"] = model.generate(**kwargs)
        except Exception as exc:  # noqa: BLE001 (any failure is re-raised in the caller's thread below)
            output["error"] = exc
            streamer.end()

    began = time.perf_counter()
    worker = threading.Thread(target=_run, daemon=True)
    worker.start()
    text, emitted, first_token, stopped = "", 0, None, False
    # Hold back as many characters as the longest stop sequence minus one, so a stop that arrives
    # split across tokens is never shown.
    hold = max((len(s) for s in cfg.stop), default=1) - 1
    for piece in streamer:
        if first_token is None and piece:
            first_token = time.perf_counter() - began
        text += piece
        text, stopped = cut_at_stop(text, cfg.stop)
        safe = len(text) if stopped else max(emitted, len(text) - hold)
        if safe > emitted:
            yield StreamChunk(text[emitted:safe])
            emitted = safe
        if stopped:
            break
    worker.join()
    if "error" in output:
        raise output["error"]
    seconds = time.perf_counter() - began
    if emitted < len(text):
        yield StreamChunk(text[emitted:])
    ids = output["ids"][0, prompt_len:].tolist()
    eos_ids = set(loaded.eos_token_ids)
    n_gen = next((k + 1 for k, t in enumerate(ids) if t in eos_ids), len(ids))
    hit_eos = any(t in eos_ids for t in ids)
    result = GenerationResult(text=text, prompt_tokens=prompt_len, completion_tokens=n_gen, seconds=seconds,
                              finish_reason="stop" if (stopped or hit_eos) else "length",
                              first_token_seconds=first_token, settings=cfg.model_dump())
    yield StreamChunk("", result=result)
