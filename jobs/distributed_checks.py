"""Submit-time checks of a spec's ``resources`` for several processes: refused with the reason and the fix.

- Only training kinds run on several processes (``jobs.distributed.DISTRIBUTED_KINDS``); evaluation and completion
  generation run in one.
- With several GPUs each process drives one: ``processes`` is 1 (one per GPU) or equal to ``gpus``.
- A CPU job gets at most one process per core of the largest registered worker (this machine when none is
  registered): more only take turns on the cores.
- FSDP shards full fine-tuning on GPUs of the Trainer-based kinds (sft, dpo, grpo); with LoRA, on CPU, or for our own
  loops (reward, ppo) DDP is the tool.
- PPO and GRPO split their step's batch evenly over the processes.
"""

import os

from backend.errors import StudioError

DISTRIBUTED_KINDS = ("sft", "reward", "dpo", "grpo", "ppo")  # the training kinds; eval and labeling run alone
TRAINER_KINDS = ("sft", "dpo", "grpo")  # built on transformers' Trainer: FSDP is available to them


def world_size(spec) -> int:
    """How many ranks a spec asks for: ``processes``, or one per GPU when only ``gpus`` > 1 is set."""
    resources = getattr(spec, "resources", None)
    if resources is None or spec.kind not in DISTRIBUTED_KINDS:
        return 1
    if resources.processes > 1:
        return resources.processes
    return max(1, resources.gpus)


def _on_cpu(resources) -> bool:
    """The job will train on CPUs: asked for, or no GPU asked for and this machine has none."""
    if resources.devices == "cpu":
        return True
    if resources.devices == "cuda" or resources.gpus:
        return False
    import torch

    return not torch.cuda.is_available()


def _most_cores(session) -> tuple[int, str]:
    """The most CPU cores a worker offers (workers that registered and did not stop), else this machine's."""
    if session is not None:
        from sqlalchemy import func, select

        from backend.db.tables import Worker

        most = session.scalar(select(func.max(Worker.cpu_count)).where(Worker.stopped_at.is_(None)))
        if most:
            return int(most), "the largest worker has"
    return os.cpu_count() or 1, "this machine has"


def check_resources(spec, session=None) -> None:
    """Refuse ``resources`` this job cannot run with (raises ``StudioError`` with the fix); with a ``session`` the
    registered workers' cores count, else this machine's."""
    r = getattr(spec, "resources", None)
    if r is None:
        return
    if spec.kind not in DISTRIBUTED_KINDS:
        if r.processes > 1 or r.gpus > 1:
            raise StudioError(f"{spec.kind} jobs run in one process on one device: set resources.processes to 1 and "
                              f"resources.gpus to at most 1 (several processes are for training jobs: "
                              f"{', '.join(DISTRIBUTED_KINDS)}).")
        return
    if r.processes > 1 and r.gpus > 1 and r.processes != r.gpus:
        raise StudioError(f"resources.processes ({r.processes}) and gpus ({r.gpus}) disagree: each process drives one "
                          f"GPU, so set processes to {r.gpus} (or leave it at 1: one process per GPU).")
    n = world_size(spec)
    if n == 1:
        return
    on_cpu = _on_cpu(r)
    cores, where = _most_cores(session) if on_cpu else (0, "")
    if on_cpu and n > cores:
        raise StudioError(f"resources.processes is {n} but {where} {cores} CPU core(s): each process needs a "
                          f"core of its own, more only take turns and make the job slower. Use at most {cores} "
                          "processes, or run on GPUs (devices: cuda, gpus: N).")
    if r.strategy == "fsdp":
        if spec.kind not in TRAINER_KINDS:
            raise StudioError(f"strategy fsdp is for {', '.join(TRAINER_KINDS)} (built on transformers' Trainer); "
                              f"{spec.kind} runs our own loop, which averages gradients across processes as DDP "
                              "does: use strategy ddp.")
        if getattr(spec, "peft", "none") != "none":
            raise StudioError("strategy fsdp shards full fine-tuning (peft none): with LoRA only the small adapters "
                              "train, each process holds the frozen model anyway, and sharded adapters are not "
                              "supported here. Use strategy ddp, or peft none to shard the whole model.")
        if on_cpu:
            raise StudioError("strategy fsdp runs on CUDA GPUs (NCCL), not on CPU processes here: use strategy ddp "
                              "on CPU, or ask for GPUs (devices: cuda, gpus: N).")
    batch = _split_batch(spec)
    if batch is not None:
        for name, value in batch.items():
            if value % n:
                raise StudioError(f"{name} ({value}) must be a multiple of the {n} processes: each process rolls "
                                  f"out an equal share of the step. Use {max(n, value - value % n)} or "
                                  f"{value - value % n + n}.")


def _split_batch(spec) -> dict[str, int] | None:
    """The batch sizes a kind splits over its processes (PPO, GRPO); others are per process."""
    if spec.kind == "ppo":
        return {"ppo.batch_size": spec.ppo.batch_size, "ppo.mini_batch_size": spec.ppo.mini_batch_size}
    if spec.kind == "grpo":
        return {"batch_size": spec.batch_size}
    return None
