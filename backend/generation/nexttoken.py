"""Next-token view: what each decoding control does to the model's next-token distribution.

The pure functions take a probability vector over the vocabulary (numpy) and return a new one,
renormalised, with the tokens a control removes at probability 0. They follow transformers'
warpers and the order ``generate`` applies them in: penalties → temperature → top-k → top-p →
min-p → typical-p. Conventions, on the seeds' example (cake .20, donut .10, banana .02, apple .01,
the rest spread over other words):

- temperature T divides the logits (``p ** (1/T)`` renormalised): T < 1 peaks the distribution,
  T > 1 flattens it, T = 1 leaves it unchanged, T = 0 is greedy (all mass on the top token);
- top-k keeps the k most likely tokens (ties at the k-th probability are kept, as in transformers):
  k=3 keeps cake, donut, banana — apple is never picked;
- top-p keeps the *smallest set of most likely tokens whose cumulative probability is ≥ p*
  (transformers' convention; the course texts disagree, see digest A E-4): p=0.3 keeps cake + donut;
- min-p keeps tokens with probability ≥ min_p × the top token's;
- typical-p keeps the tokens whose surprise is closest to the entropy, up to that mass.

``next_token_candidates`` runs a model: it continues the prompt greedily up to the chosen step,
then shows the distribution at that step before and after each active control. torch is imported
lazily (pages import this module).
"""

from typing import TYPE_CHECKING, Any

import numpy as np

from backend.errors import StudioError

if TYPE_CHECKING:
    from backend.generation.decoding import DecodingConfig
    from backend.models.loader import LoadedModel

# The course's toy next-token distribution (apple's value is not in the text; .01 keeps it last).
SEED_EXAMPLE: dict[str, float] = {"cake": 0.20, "donut": 0.10, "banana": 0.02, "apple": 0.01}

STAGE_LABELS = {"model": "Model", "penalties": "After penalties", "temperature": "After temperature",
                "top_k": "After top-k", "top_p": "After top-p", "min_p": "After min-p", "typical_p": "After typical-p"}


def _as_probs(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("Expected a non-empty 1-D probability vector.")
    if (p < 0).any() or not np.isfinite(p).all() or p.sum() <= 0:
        raise ValueError("Probabilities must be finite, non-negative and not all zero.")
    return p / p.sum()


def softmax(logits) -> np.ndarray:
    """Probabilities from logits (``-inf`` logits get probability 0)."""
    x = np.asarray(logits, dtype=np.float64)
    x = np.exp(x - np.max(x))
    return x / x.sum()


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """Rescale as ``softmax(log p / T)``: T<1 peaks, T>1 flattens, T=1 unchanged, T=0 greedy."""
    p = _as_probs(probs)
    if temperature < 0:
        raise ValueError("Temperature cannot be negative.")
    if temperature == 0:
        out = np.zeros_like(p)
        out[int(np.argmax(p))] = 1.0
        return out
    if temperature == 1:
        return p
    with np.errstate(divide="ignore"):
        return softmax(np.log(p) / temperature)


def _keep(p: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.where(mask, p, 0.0)
    return out / out.sum()


def apply_top_k(probs, k: int) -> np.ndarray:
    """Keep the k most likely tokens (0 = off); tokens tied with the k-th are kept, as in transformers."""
    p = _as_probs(probs)
    if k <= 0 or k >= p.size:
        return p
    kth = np.partition(p, -k)[-k]
    return _keep(p, p >= kth)


def apply_top_p(probs, top_p: float) -> np.ndarray:
    """Keep the smallest set of most likely tokens whose cumulative probability is ≥ ``top_p`` (1 = off)."""
    p = _as_probs(probs)
    if not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1].")
    if top_p >= 1:
        return p
    order = np.argsort(-p, kind="stable")
    mass_before = np.cumsum(p[order]) - p[order]  # probability of the strictly more likely tokens
    keep_sorted = mass_before < top_p - 1e-9  # tolerance: 0.2 + 0.1 must count as reaching 0.3
    keep_sorted[0] = True
    mask = np.zeros(p.size, dtype=bool)
    mask[order[keep_sorted]] = True
    return _keep(p, mask)


def apply_min_p(probs, min_p: float) -> np.ndarray:
    """Keep tokens at least ``min_p`` times as likely as the most likely one (0 = off)."""
    p = _as_probs(probs)
    if min_p <= 0:
        return p
    return _keep(p, p >= min_p * p.max() * (1 - 1e-9))  # tolerance: 0.02 ≥ 0.1 × 0.20 must hold


def apply_typical_p(probs, mass: float) -> np.ndarray:
    """Locally typical sampling (transformers' ``TypicalLogitsWarper``; 1 = off)."""
    p = _as_probs(probs)
    if mass >= 1:
        return p
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(p)
        entropy = -np.nansum(p * logp)
        shifted = np.abs(-logp - entropy)
    order = np.argsort(shifted, kind="stable")
    cum = np.cumsum(p[order])
    last = min(int((cum < mass).sum()), p.size - 1)
    mask = np.zeros(p.size, dtype=bool)
    mask[order[: last + 1]] = True
    return _keep(p, mask)


def apply_controls(probs, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
                   typical_p: float = 1.0, only_active: bool = True) -> list[tuple[str, np.ndarray]]:
    """The distribution after each control, in transformers' order: ``[("temperature", p), ("top_k", p), …]``.

    Args:
        only_active: leave out controls at their "off" value (their column would repeat the previous one).
    """
    steps = [("temperature", temperature, 1.0, apply_temperature), ("top_k", top_k, 0, apply_top_k),
             ("top_p", top_p, 1.0, apply_top_p), ("min_p", min_p, 0.0, apply_min_p),
             ("typical_p", typical_p, 1.0, apply_typical_p)]
    p, stages = _as_probs(probs), []
    for name, value, off, fn in steps:
        if only_active and value == off:
            continue
        p = fn(p, value)
        stages.append((name, p))
    return stages


def entropy_bits(probs) -> float:
    """Shannon entropy in bits: how spread out a distribution is (0 = one certain token)."""
    p = _as_probs(probs)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def toy_distribution(words: dict[str, float] | None = None) -> tuple[list[str], np.ndarray]:
    """The seeds' named words plus the rest of the vocabulary as "other" tokens, none likelier than the last word.

    The course lists a few words of a full vocabulary; the unnamed mass must stay spread out, or a
    single "other" bucket would look like the most likely token.
    """
    words = dict(words or SEED_EXAMPLE)
    rest = 1.0 - sum(words.values())
    if rest < -1e-9 or min(words.values()) <= 0:
        raise ValueError("Word probabilities must be positive and add up to at most 1.")
    n_other = int(np.ceil(rest / min(words.values()) - 1e-9)) if rest > 1e-9 else 0
    labels = list(words) + [f"(other {i + 1})" for i in range(n_other)]
    probs = list(words.values()) + [rest / n_other] * n_other
    return labels, np.asarray(probs, dtype=np.float64)


def candidate_table(labels: list[str], stages: list[tuple[str, np.ndarray]], top_n: int = 10) -> list[dict[str, Any]]:
    """Rows for the ``top_n`` tokens of the first stage, with each stage's probability as a column."""
    first = stages[0][1]
    order = np.argsort(-first, kind="stable")[:top_n]
    return [{"token": labels[i], "token_id": int(i), **{name: round(float(p[i]), 6) for name, p in stages}}
            for i in order]


def explain_controls(words: dict[str, float] | None = None, *, top_n: int = 8, **controls) -> dict[str, Any]:
    """The seeds' toy example for the UI: a table of word probabilities before and after each control."""
    labels, probs = toy_distribution(words)
    stages = [("model", probs), *apply_controls(probs, **controls)]
    return {"table": candidate_table(labels, stages, top_n), "stages": [n for n, _ in stages],
            "kept": {n: int((p > 0).sum()) for n, p in stages}}


def _top(tokenizer, probs: np.ndarray, n: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[:n]
    return [{"token": tokenizer.decode([int(i)]), "token_id": int(i), "prob": round(float(probs[i]), 6)}
            for i in order if probs[i] > 0]


def _penalised_logits(loaded: "LoadedModel", cfg: "DecodingConfig", ids, logits, prompt_len: int, step: int):
    """Apply the logits processors ``generate`` runs before sampling (same classes, same order)."""
    from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    from backend.generation.penalties import FrequencyPresencePenalty

    scores = logits.clone().unsqueeze(0)
    if cfg.repetition_penalty != 1.0:
        scores = RepetitionPenaltyLogitsProcessor(cfg.repetition_penalty)(ids, scores)
    if cfg.no_repeat_ngram_size:
        scores = NoRepeatNGramLogitsProcessor(cfg.no_repeat_ngram_size)(ids, scores)
    if step < cfg.min_new_tokens:
        scores[:, list(loaded.eos_token_ids)] = float("-inf")
    if cfg.frequency_penalty or cfg.presence_penalty:
        scores = FrequencyPresencePenalty(cfg.frequency_penalty, cfg.presence_penalty, prompt_len)(ids, scores)
    return scores[0]


def next_token_candidates(loaded: "LoadedModel", prompt_text: str, step: int, cfg: "DecodingConfig",
                          top_n: int = 10) -> dict[str, Any]:
    """The model's top next-token candidates at ``step``, before and after each active decoding control.

    The prompt is continued greedily (with the config's penalties) for ``step`` tokens; the
    distribution shown is the one for the token after that. Sampling controls are shown even when
    sampling is off, so a user can see what they would do.

    Args:
        loaded: a loaded model.
        prompt_text: the exact text fed to the model (chat template already applied).
        step: 0 = the first generated token.
        cfg: the decoding settings to visualise.
        top_n: rows in each table.

    Returns:
        ``{"step", "prompt_tokens", "context", "sampling", "stages", "table", "before", "after",
        "greedy_token", "kept", "entropy_bits"}`` — ``table`` has one row per candidate (the model's
        top ``top_n``, then final candidates the penalties promoted) and one probability column per
        stage; ``before``/``after`` are the model's and the final top lists.
    """
    import torch

    from backend.generation.engine import check_fits, generate_kwargs

    if step < 0:
        raise StudioError("The step must be 0 (the first generated token) or more.")
    if not 1 <= top_n <= 100:
        raise StudioError("Show between 1 and 100 candidates.")
    tok, model = loaded.tokenizer, loaded.model
    ids = tok(prompt_text, return_tensors="pt", add_special_tokens=False).input_ids.to(loaded.device)
    prompt_len = ids.shape[1]
    greedy = cfg.model_copy(update={"do_sample": False, "num_beams": 1, "num_return_sequences": 1, "stop": [],
                                    "max_new_tokens": max(step, 1), "min_new_tokens": min(cfg.min_new_tokens, step)})
    check_fits(loaded, prompt_len, greedy.model_copy(update={"max_new_tokens": step + 1}))
    with torch.inference_mode():
        if step > 0:
            ids = model.generate(ids, attention_mask=torch.ones_like(ids), **generate_kwargs(loaded, greedy, prompt_len))
            generated = ids[0, prompt_len:].tolist()
            ended = next((i for i, t in enumerate(generated) if t in loaded.eos_token_ids), None)
            if ended is not None or len(generated) < step:
                last = ended if ended is not None else len(generated) - 1
                raise StudioError(f"The greedy continuation ends (end-of-sequence) at step {last}: "
                                  f"choose a step from 0 to {last}.")
        logits = model(input_ids=ids).logits[0, -1].float()
        processed = _penalised_logits(loaded, cfg, ids, logits, prompt_len, step)
    raw = softmax(logits.cpu().numpy())
    stages = [("model", raw)]
    penalised = softmax(processed.cpu().numpy())
    if not np.allclose(penalised, raw, atol=1e-12):
        stages.append(("penalties", penalised))
    stages += apply_controls(stages[-1][1], temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                             min_p=cfg.min_p, typical_p=cfg.typical_p)
    final = stages[-1][1]
    # Rows: the model's top candidates, then any of the final top candidates the penalties promoted.
    order = list(np.argsort(-raw, kind="stable")[:top_n])
    order += [i for i in np.argsort(-final, kind="stable")[:top_n] if final[i] > 0 and i not in set(order)]
    table = [{"token": tok.decode([int(i)]), "token_id": int(i), **{name: round(float(p[i]), 6) for name, p in stages}}
             for i in order]
    return {
        "step": step, "prompt_tokens": prompt_len, "sampling": cfg.sampling,
        "context": tok.decode(ids[0, prompt_len:].tolist(), skip_special_tokens=False),
        "stages": [{"name": n, "label": STAGE_LABELS[n]} for n, _ in stages],
        "table": table, "before": _top(tok, raw, top_n), "after": _top(tok, final, top_n),
        "greedy_token": tok.decode([int(np.argmax(penalised))]),
        "kept": {n: int((p > 0).sum()) for n, p in stages},
        "entropy_bits": {n: round(entropy_bits(p), 4) for n, p in stages},
    }
