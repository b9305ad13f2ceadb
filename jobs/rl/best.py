"""Keep the best held-out checkpoint of an online RL run instead of its last step.

A PPO run's held-out reward often peaks before the end while its KL keeps growing (the detox run in the README: −42 %
toxicity with KL 3.3 at step 50, KL 5.7 over the target at step 100). ``BestWeights`` watches each held-out
evaluation and keeps, in memory, the trainable weights (LoRA matrices and the value head: a few MB; every weight for
full-parameter training) of the evaluation with the highest mean reward whose KL per completion stays within the
limit; ``restore`` puts them back before the model is saved. The start (step 0) is never kept: it is not a result.
"""

from statistics import mean

import torch


class BestWeights:
    def __init__(self, module: torch.nn.Module, kl_limit: float | None):
        self.module, self.kl_limit = module, kl_limit
        self.step: int | None = None
        self.scores: dict[str, float] = {}
        self._weights: dict[str, torch.Tensor] = {}

    def offer(self, step: int, rows: list[dict]) -> bool:
        """Consider the evaluation at ``step`` (its per-completion rows: reward, toxicity, kl); True when kept."""
        if step == 0 or not rows:
            return False
        reward, kl = mean(r["reward"] for r in rows), mean(r["kl"] for r in rows)
        if self.kl_limit is not None and kl > self.kl_limit:
            return False
        if self.step is not None and reward <= self.scores["eval/reward"]:
            return False
        self.step = step
        self.scores = {"eval/reward": reward, "eval/kl": kl, "eval/toxicity": mean(r["toxicity"] for r in rows)}
        self._weights = {name: p.detach().to("cpu", copy=True) for name, p in self.module.named_parameters()
                         if p.requires_grad}
        return True

    @torch.no_grad()
    def restore(self) -> None:
        """Put the kept weights back into the module (nothing kept: leave it as it is)."""
        params = dict(self.module.named_parameters())
        for name, value in self._weights.items():
            params[name].copy_(value.to(params[name].device))
