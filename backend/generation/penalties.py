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
