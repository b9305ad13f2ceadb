"""The trainer callback on its own: tokens/s from num_tokens deltas over training time only, and a cancel that
saves a checkpoint when the job checkpoints."""

from types import SimpleNamespace

from transformers import TrainerControl, TrainerState

from jobs.callbacks import StudioCallback


class FakeContext:
    def __init__(self, cancel=False):
        self.rows: list[tuple[int, dict]] = []
        self.cancel = cancel

    def log_metrics(self, step, values):
        self.rows.append((step, dict(values)))

    def should_cancel(self):
        return self.cancel


def test_tokens_per_second_counts_training_time_only(monkeypatch):
    clock = iter([0.0,  # init
                  0.0,  # train begin
                  2.0,  # step 1 ends: 2 s of training
                  3.0,  # log of step 1 done (DB write took 1 s)
                  9.0,  # evaluation done (6 s, not training)
                  13.0,  # step 2 ends: 4 s of training
                  13.5])  # log of step 2 done
    monkeypatch.setattr("jobs.callbacks.time.perf_counter", lambda: next(clock))
    ctx = FakeContext()
    cb = StudioCallback(ctx)
    args, state, control = SimpleNamespace(save_strategy="no"), TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control)
    state.global_step = 1
    cb.on_step_end(args, state, control)
    cb.on_log(args, state, control, logs={"loss": 2.0, "num_tokens": 100.0})
    cb.on_evaluate(args, state, control)
    state.global_step = 2
    cb.on_step_end(args, state, control)
    cb.on_log(args, state, control, logs={"loss": 1.5, "num_tokens": 500.0})
    assert [(step, row["train/tokens_per_second"]) for step, row in ctx.rows] == [(1, 50.0), (2, 100.0)]


def test_eval_logs_do_not_count_tokens():
    ctx = FakeContext()
    cb = StudioCallback(ctx)
    cb.on_log(SimpleNamespace(), TrainerState(), TrainerControl(), logs={"eval_loss": 1.0, "eval_num_tokens": 9.0})
    assert "train/tokens_per_second" not in ctx.rows[0][1]


def test_cancel_stops_and_saves_when_checkpointing():
    for strategy, saves in (("steps", True), ("no", False)):
        control = TrainerControl()
        StudioCallback(FakeContext(cancel=True)).on_step_end(SimpleNamespace(save_strategy=strategy),
                                                             TrainerState(), control)
        assert control.should_training_stop and control.should_save is saves
