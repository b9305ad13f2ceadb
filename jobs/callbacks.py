"""Trainer callback: metrics rows for the live charts and a cooperative cancel at step boundaries."""

import time

from transformers import TrainerCallback

from jobs.context import JobContext


class StudioCallback(TrainerCallback):
    """Writes every logged value as a metrics row and stops training when the job is cancelled.

    ``train/tokens_per_second`` is measured, not estimated: the change in TRL's cumulative ``num_tokens``
    (the attention-mask tokens the trainer really processed) between two training logs, divided by the
    time spent in training steps between them. The clock restarts after each log, evaluation and save,
    so evaluation, checkpoint writing and our own database writes do not count as training time.

    On cancel, a job that writes checkpoints (``save_strategy`` not ``no``) saves one where it stopped,
    so it can be resumed.
    """

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self._clock = time.perf_counter()
        self._train_seconds = 0.0
        self._last = (0.0, 0.0)  # (num_tokens, train seconds) at the previous training log

    def _restart_clock(self) -> None:
        self._clock = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self._restart_clock()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self._train_seconds += now - self._clock
        self._clock = now
        if self.ctx.should_cancel():
            control.should_training_stop = True
            if args.save_strategy != "no":
                control.should_save = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        tokens = logs.get("num_tokens")
        if isinstance(tokens, int | float):
            last_tokens, last_seconds = self._last
            if tokens < last_tokens:  # a resumed run counts from zero again
                last_tokens = 0.0
            seconds = self._train_seconds - last_seconds
            if seconds > 0 and tokens > last_tokens:
                logs["train/tokens_per_second"] = (tokens - last_tokens) / seconds
            self._last = (float(tokens), self._train_seconds)
        self.ctx.log_metrics(state.global_step, logs)
        self._restart_clock()

    def on_evaluate(self, args, state, control, **kwargs):
        self._restart_clock()

    def on_save(self, args, state, control, **kwargs):
        self._restart_clock()
