"""The job kinds: one line per kind names its spec class, its runner module and its submit-time check.

Adding a training method is one line in ``KINDS`` plus its files: a spec class (``jobs.specs``), a runner module
with ``run(ctx)`` (``jobs/runners/``), a check (``jobs.checks`` / ``jobs.rl.checks``), a preset (``jobs/presets/``)
and a test. The Jobs form, ``studio job submit``, the queue and ``python -m jobs.run`` all read this table.
Runner modules are named, not imported: they load torch and friends, which only the job process should pay for.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from backend.errors import StudioError
from jobs import checks
from jobs.distributed_checks import check_resources
from jobs.memory_saving import check_quantization
from jobs.rl import checks as rl_checks
from jobs.specs import DPOSpec, EvalSpec, GRPOSpec, LabelCompletionsSpec, PPOSpec, RewardSpec, SFTSpec, SpecModel


@dataclass(frozen=True)
class JobKind:
    spec: type[SpecModel]  # the pydantic class: form fields, YAML schema and validation
    runner: str  # module with ``run(ctx)``, imported by the job process only
    check: Callable[[Session, Any], None]  # database-aware checks before queueing (raise StudioError)


KINDS: dict[str, JobKind] = {
    "sft": JobKind(SFTSpec, "jobs.runners.sft", checks.check_sft),
    "eval": JobKind(EvalSpec, "jobs.runners.evaluate", checks.check_eval),
    "label_completions": JobKind(LabelCompletionsSpec, "jobs.runners.label_completions",
                                 checks.check_label_completions),
    "reward": JobKind(RewardSpec, "jobs.runners.reward", rl_checks.check_preference_job),
    "ppo": JobKind(PPOSpec, "jobs.runners.ppo", rl_checks.check_ppo),
    "dpo": JobKind(DPOSpec, "jobs.runners.dpo", rl_checks.check_preference_job),
    "grpo": JobKind(GRPOSpec, "jobs.runners.grpo", rl_checks.check_grpo),
}
JobSpec = Annotated[Union[tuple(k.spec for k in KINDS.values())], Field(discriminator="kind")]  # noqa: UP007
_adapter = TypeAdapter(JobSpec)


def check_spec(session: Session, spec: SpecModel) -> None:
    """Run the kind's submit-time check (the spec itself is already valid); raises ``StudioError``."""
    check_resources(spec, session)  # several processes / GPUs: the same rules for every kind
    check_quantization(spec, session)  # QLoRA: a CUDA GPU with bitsandbytes, here or on a live worker
    KINDS[spec.kind].check(session, spec)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _problem(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"][1:]) or "spec"  # loc[0] is the kind (the union's tag)
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown field (check its spelling and nesting)"
    if error["type"] in ("literal_error", "enum") or error["type"].startswith(("greater", "less")):
        msg += f" (got {error.get('input')!r})"
    return f"{where}: {msg}"


def parse_spec(data: Any) -> SpecModel:
    """Validate a spec dict; errors become one readable, one-line ``StudioError``."""
    if data is None:
        raise StudioError(f"The job spec is empty: it needs at least `kind` ({' | '.join(KINDS)}).")
    if not isinstance(data, dict):
        raise StudioError(f"A job spec is a mapping of fields (kind: {' | '.join(KINDS)}, …), "
                          f"not {type(data).__name__}.")
    kind = data.get("kind")
    if kind is None:
        raise StudioError(f"A job spec needs `kind`, one of: {', '.join(KINDS)}.")
    if not isinstance(kind, str) or kind not in KINDS:
        raise StudioError(f"kind: unknown job kind {_one_line(repr(kind))[:60]}; use one of: {', '.join(KINDS)}.")
    try:
        return _adapter.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise StudioError(_one_line(f"Invalid {kind} job spec — {problems}")) from None
