"""Trainer callback: metrics rows for the live charts and a cooperative cancel at step boundaries."""

import time

from transformers import TrainerCallback

from jobs.context import JobContext


class StudioCallback(TrainerCallback):
    """Writes every logged value as a metrics row and stops training when the job is cancelled."""

    def __init__(self, ctx: JobContext, tokens_per_step: float | None = None):
        self.ctx = ctx
        self.tokens_per_step = tokens_per_step
        self._step_started = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_started and self.tokens_per_step:
            self.ctx.log_metrics(state.global_step, {
                "train/tokens_per_second": self.tokens_per_step / (time.perf_counter() - self._step_started)})
        if self.ctx.should_cancel():
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.ctx.log_metrics(state.global_step, logs or {})
