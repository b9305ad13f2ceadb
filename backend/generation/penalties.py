"""OpenAI-style additive penalties as a transformers ``LogitsProcessor``.

For each token t already generated in this completion (the prompt does not count):
``logit[t] -= frequency_penalty * count(t) + presence_penalty * (count(t) > 0)``.
Unlike ``repetition_penalty`` (multiplicative, counts the prompt), these grow with repetition.
"""

import torch
from transformers import LogitsProcessor


class FrequencyPresencePenalty(LogitsProcessor):
    def __init__(self, frequency_penalty: float, presence_penalty: float, prompt_len: int):
        self.frequency_penalty = frequency_penalty
        self.presence_penalty = presence_penalty
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_len :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency_penalty * counts - self.presence_penalty * (counts > 0).to(scores.dtype)


class StopOnSequences:
    """A ``StoppingCriteria`` that ends a row once its *completion* contains a stop sequence.

    transformers' own ``stop_strings`` also matches across the prompt boundary (a prompt ending in
    "." plus a generated ".." matches "..."), which is not the OpenAI semantics we promise.
    """

    def __init__(self, tokenizer, stops: list[str], prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, stops, prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)
