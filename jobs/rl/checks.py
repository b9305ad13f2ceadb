"""Checks made before an RLHF job is queued: every refusal says what is wrong and what to change.

Cheap only: configs and tokenizers are read (no weights), preference pairs are counted. The spec classes
already refuse settings that cannot work on their own (mini-batch larger than the batch, KL target ≤ 0).
"""

from pathlib import Path

from sqlalchemy.orm import Session

from backend.errors import StudioError


def _start_model(session: Session, ref: str, what: str):
    """A model a job can start from: a base or full model, or a LoRA adapter (merged at load)."""
    from backend.models.store import resolve

    model = resolve(session, ref)
    if model.kind == "reward":
        raise StudioError(f"{what} '{model.name}' is a reward model (a scorer): start from a language model.")
    if model.kind == "adapter":
        from jobs.modeling import check_adapter_fits, is_prompt_learning

        if not model.base_path:
            raise StudioError(f"Adapter '{model.name}' has no registered base model to load it onto.")
        if is_prompt_learning(model.path):
            raise StudioError(f"{what} '{model.name}' is a prompt-tuning adapter, which cannot be merged into "
                              "weights: start from a LoRA adapter or a full model.")
        check_adapter_fits(model.path, model.base_path, model.name, Path(model.base_path).name)
    return model


def weights_path(model) -> str:
    """Where a resolved model's tokenizer and base weights live (an adapter's base)."""
    return model.base_path if model.kind == "adapter" and model.base_path else model.path


def _vocab(path: str, name: str) -> dict[str, int]:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path).get_vocab()
    except (OSError, ValueError) as exc:
        raise StudioError(f"Could not read the tokenizer of '{name}' ({str(exc).splitlines()[0][:160]}).") from None


def same_tokenizer(path_a: str, path_b: str) -> bool:
    return _vocab(path_a, path_a) == _vocab(path_b, path_b)


def check_preference_job(session: Session, spec) -> None:
    """Reward and DPO jobs: the start model loads and the data gives at least ``min_pairs`` training pairs."""
    from jobs.rl.preferences import check_enough, load_pairs

    _start_model(session, spec.base_model, "base_model")
    check_enough(load_pairs(session, spec.data), spec.data.min_pairs)


def check_ppo(session: Session, spec) -> None:
    from backend.models.store import resolve

    policy = _start_model(session, spec.policy_model, "policy_model")
    if spec.reference_model is not None:
        reference = resolve(session, spec.reference_model)
        same = reference.path == policy.path and reference.base_path == policy.base_path
        if spec.peft == "lora" and not same:
            raise StudioError(f"reference_model '{reference.name}' is not the policy's starting model "
                              f"'{policy.name}': with LoRA the reference is the policy with its adapters switched "
                              "off. Leave reference_model empty, or use peft none to load a separate reference.")
        if not same:
            _start_model(session, spec.reference_model, "reference_model")
            if not same_tokenizer(weights_path(reference), weights_path(policy)):
                raise StudioError(f"reference_model '{reference.name}' uses a different tokenizer than the policy "
                                  f"'{policy.name}': the per-token KL compares the same tokens, so the reference must "
                                  "be the policy's base or a model trained from it.")
            _check_same_vocab_size(weights_path(reference), weights_path(policy), reference.name, policy.name)
    _check_prompt_splits(spec, [spec.split] + ([spec.eval_split] if spec.eval_prompts else []))
    _check_reward_source(session, spec, policy)


def check_grpo(session: Session, spec) -> None:
    policy = _start_model(session, spec.policy_model, "policy_model")
    _check_prompt_splits(spec, [spec.split])
    _check_reward_source(session, spec, policy)


def _check_prompt_splits(spec, splits_needed: list[str]) -> None:
    from backend.data.rlhf_prompts import ensure_demo_prompts
    from jobs.data import dataset_splits

    ensure_demo_prompts(spec.prompts)
    splits = dataset_splits(spec.prompts)
    for split in splits_needed:
        if split not in splits:
            held_out = split == getattr(spec, "eval_split", None) and split != spec.split
            raise StudioError(f"Prompt dataset '{spec.prompts}' has no '{split}' split (it has: {', '.join(splits)})"
                              + ("; set eval_prompts to 0 to skip held-out evaluation." if held_out else "."))


def _check_same_vocab_size(path_a: str, path_b: str, name_a: str, name_b: str) -> None:
    from transformers import AutoConfig

    sizes = [AutoConfig.from_pretrained(p).get_text_config().vocab_size for p in (path_a, path_b)]
    if sizes[0] != sizes[1]:
        raise StudioError(f"'{name_a}' has {sizes[0]} output tokens and '{name_b}' {sizes[1]}: the reference must "
                          "share the policy's vocabulary.")


def _check_reward_source(session: Session, spec, policy) -> None:
    for reward in spec.reward.terms():
        _check_reward_term(session, reward, policy)


def _check_reward_term(session: Session, reward, policy) -> None:
    if reward.source == "toxicity":
        return
    if reward.source == "reward_model":
        model = check_reward_model(session, reward.model, "reward.model")
        if not same_tokenizer(model.path, weights_path(policy)):
            raise StudioError(f"Reward model '{model.name}' uses a different tokenizer than the policy "
                              f"'{policy.name}': train the reward model from the policy's base (or its SFT "
                              "checkpoint) so both read text the same way.")
        return
    folder = Path(reward.model).expanduser()
    config = _config(str(folder) if folder.is_dir() else reward.model, reward.model)
    labels = {str(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    wanted = str(reward.class_label)
    if wanted not in labels and wanted.lower() not in {v.lower() for v in labels.values()}:
        shown = ", ".join(f"{k}={v}" for k, v in labels.items())
        raise StudioError(f"class_label '{wanted}' is not one of the classifier's classes ({shown}).")


def check_reward_model(session: Session, ref: str, field: str = "reward_model"):
    """A reward model to score with, resolved: registered with kind ``reward`` (a reward job's output), or a model
    whose config is a one-output sequence classifier. Reads the config only (no weights)."""
    from backend.models.store import resolve

    try:
        model = resolve(session, ref)
    except StudioError as exc:
        raise StudioError(f"{field}: {exc}") from None
    if model.kind == "reward":
        return model
    why = "it is an adapter"
    if model.kind != "adapter":
        config = _config(model.path, model.name)
        heads = [a for a in config.get("architectures") or [] if a.endswith("ForSequenceClassification")]
        n_out = len(config.get("id2label") or {})
        if heads and n_out == 1:
            return model
        why = f"it has {n_out} outputs" if heads else "it has no sequence-classification head (a language model?)"
    raise StudioError(f"{field}: '{model.name}' is not a reward model ({why}). Pick a model trained by a reward "
                      "job (kind reward on the Models page), or use another reward source.")


def _config(path: str, name: str) -> dict:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path).to_dict()
    except Exception as exc:  # noqa: BLE001 - offline, missing folder, unknown id: the fix is the same
        raise StudioError(f"Could not read the config of '{name}' ({str(exc).splitlines()[0][:160]}): give a local "
                          "model folder (the hub is not reachable offline).") from None
