"""Scoring completions with a reward (a tiny random reward model built here, or the packaged toxicity score), the
per-process cache of reward models, best-of-n ordering, and the scores kept with a saved run."""

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import PlaygroundRun
from backend.errors import StudioError
from services import compare, reward_scoring, runs
from services.reward_scoring import TOXICITY, resolve_source, score_with
from services.runs import best_first

PROMPTS = ["Tell me about cake.", "Tell me about cake.", "What is the capital of France?"]
ANSWERS = ["Cake is a sweet baked food.", "banana apple donut", "The capital of France is Paris."]


def build_reward_model(folder: Path, like: Path, *, chat_format: bool = True) -> Path:
    """A one-output sequence classifier on the tiny model's config and tokenizer, as a reward job saves one."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    config = AutoConfig.from_pretrained(like)
    config.num_labels = 1
    torch.manual_seed(1)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(like).save_pretrained(folder)
    (folder / "reward_format.json").write_text(json.dumps({"chat_format": chat_format}), encoding="utf-8")
    return folder


def register_reward_model(name: str, folder: Path) -> None:
    from backend.models.store import register_model

    with session_scope(write=True) as s:
        register_model(s, name, str(folder), kind="reward", source="local")


@pytest.fixture(scope="session")
def reward_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return build_reward_model(tmp_path_factory.mktemp("tiny-rm"), tiny_model_dir)


@pytest.fixture
def reward_model(tiny_model, reward_model_dir):
    """The tiny reward model registered as 'tiny-rm' (kind reward), with an empty reward-model cache."""
    reward_scoring.clear_cache()
    register_reward_model("tiny-rm", reward_model_dir)
    yield "tiny-rm"
    reward_scoring.clear_cache()


def scores(name: str, prompts=PROMPTS, answers=ANSWERS) -> list[float]:
    with session_scope() as s:
        return score_with(resolve_source(s, name), prompts, answers)


def test_reward_model_scores_are_deterministic_floats_in_its_trained_format(reward_model, reward_model_dir, tmp_path):
    import torch

    from jobs.rl.rewards import pair_text

    first = scores(reward_model)
    assert len(first) == 3 and all(isinstance(x, float) for x in first)
    assert scores(reward_model) == first and len(set(first)) == 3  # the same every time, and it tells them apart
    scorer, _ = reward_scoring.load_reward_model(reward_scoring.RewardSource("tiny-rm", str(reward_model_dir)))
    with torch.no_grad():  # one pair at a time, in the chat format the model was trained on
        by_hand = [scorer.model(**scorer.tokenizer(pair_text(scorer.tokenizer, p, a, True), return_tensors="pt"))
                   .logits[0, 0].item() for p, a in zip(PROMPTS, ANSWERS, strict=True)]
    assert first == pytest.approx(by_hand, abs=1e-5)
    # a model trained on plain "prompt\ncompletion" text is read that way (reward_format.json)
    plain = build_reward_model(tmp_path / "plain-rm", Path(reward_model_dir), chat_format=False)
    register_reward_model("plain-rm", plain)
    plain_scores = scores("plain-rm")
    with torch.no_grad():
        expected = [scorer.model(**scorer.tokenizer(f"{p}\n{a}", return_tensors="pt")).logits[0, 0].item()
                    for p, a in zip(PROMPTS, ANSWERS, strict=True)]
    assert plain_scores == pytest.approx(expected, abs=1e-5) and plain_scores != pytest.approx(first, abs=1e-5)


def test_reward_models_are_cached_and_the_cache_is_bounded(reward_model, reward_model_dir, tmp_path, monkeypatch):
    loads = []
    real = reward_scoring.load_uncached
    monkeypatch.setattr(reward_scoring, "load_uncached", lambda *a: loads.append(a) or real(*a))
    source = reward_scoring.RewardSource("tiny-rm", str(reward_model_dir))
    one = reward_scoring.load_reward_model(source)
    assert reward_scoring.load_reward_model(source) is one
    scores(reward_model)
    scores(reward_model)
    assert len(loads) == 1  # a rerun (or another user) reuses the loaded model
    others = [reward_scoring.RewardSource(f"rm{i}", str(shutil.copytree(reward_model_dir, tmp_path / f"rm{i}")))
              for i in range(3)]
    for other in others:
        reward_scoring.load_reward_model(other)
    assert len(loads) == 4 and reward_scoring.MAX_CACHED == 2
    for other in others[:0:-1]:  # the two most recent are still cached ...
        reward_scoring.load_reward_model(other)
    assert len(loads) == 4
    assert reward_scoring.load_reward_model(source) is not one and len(loads) == 5  # ... the oldest went first


def test_toxicity_is_a_reward_that_needs_no_model(studio_env, monkeypatch):
    from backend.metrics.scorers import toxicity_scores

    monkeypatch.setattr(reward_scoring, "load_uncached", lambda *a: pytest.fail(f"toxicity loaded a model: {a}"))
    clean, rude = scores(TOXICITY, ["Say something."] * 2, ["What a lovely day.", "You stupid idiot, shut up."])
    assert (clean, rude) == pytest.approx([1 - p for p in toxicity_scores(["What a lovely day.",
                                                                           "You stupid idiot, shut up."])])
    assert 0.0 <= rude < 0.5 < clean <= 1.0


def test_best_first_orders_by_score_ties_in_generation_order_unscored_last():
    assert best_first([0.2, 0.9, None, 0.9, -1.0]) == [1, 3, 0, 4, 2]
    assert best_first([]) == [] and best_first([-3.0]) == [0]


def test_bad_reward_sources_are_messages(reward_model, reward_model_dir, tmp_path):
    with pytest.raises(StudioError, match="'tiny' is not a reward model"):
        scores("tiny")
    with pytest.raises(StudioError, match="Unknown model"):
        scores("no-such-rm")
    gone = shutil.copytree(reward_model_dir, tmp_path / "gone")
    register_reward_model("gone-rm", gone)
    shutil.rmtree(gone)
    with pytest.raises(StudioError, match="folder of reward model 'gone-rm' is missing"):
        scores("gone-rm")
    broken = shutil.copytree(reward_model_dir, tmp_path / "broken")
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    register_reward_model("broken-rm", broken)
    with pytest.raises(StudioError, match=r"Could not load (the )?reward model"):
        scores("broken-rm")
    with pytest.raises(StudioError, match="one prompt per completion"):
        scores(reward_model, PROMPTS[:1], ANSWERS)


def test_a_reward_model_with_its_own_tokenizer_scores_any_text(reward_model, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    folder = tmp_path / "word-rm"  # a word-level vocabulary unlike the tiny generator's, and no chat template
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "cake", "sweet", "banana", "Paris"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>").save_pretrained(folder)
    LlamaForSequenceClassification(LlamaConfig(vocab_size=6, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                               num_attention_heads=2, num_key_value_heads=1, num_labels=1,
                                               pad_token_id=0)).save_pretrained(folder)
    register_reward_model("word-rm", folder)
    got = scores("word-rm")
    assert len(got) == 3 and all(isinstance(x, float) for x in got) and got == scores("word-rm")


def test_best_of_n_run_keeps_its_scores_and_orders_them(reward_model):
    variant = {"model": "tiny", "prompt": {"chat": True},
               "decoding": {"do_sample": True, "temperature": 1.3, "max_new_tokens": 6, "seed": 5,
                            "num_return_sequences": 4}}
    with session_scope(write=True) as s:
        run = compare.run_comparison(s, "Tell me about cake.", [variant])
    generated = run["columns"][0]["completions"]
    with session_scope(write=True) as s:
        scored = reward_scoring.score_run(s, run["id"], reward_model, best_of_n=True)
    with session_scope() as s:  # reopened later (Runs page): the scores come back from the run's meta
        meta = s.scalars(select(PlaygroundRun.meta).where(PlaygroundRun.id == run["id"])).one()
        again = runs.get_run(s, run["id"])
    assert again == scored and again["reward"] == {"source": "tiny-rm", "best_of_n": True}
    assert meta["reward"]["source"] == "tiny-rm" and set(meta["reward"]["scores"]) == {str(c["id"]) for c in generated}
    col = again["columns"][0]
    expected = scores(reward_model, [col["text"]] * 4, [c["text"] for c in generated])
    by_id = {c["id"]: x for c, x in zip(generated, expected, strict=True)}
    got = [c["score"] for c in col["completions"]]
    assert got == pytest.approx([by_id[c["id"]] for c in col["completions"]])  # each score is its completion's
    assert got == sorted(got, reverse=True) and got[0] == pytest.approx(max(expected))  # best first
    assert [c.get("best", False) for c in col["completions"]] == [True, False, False, False]
    assert sorted(c["n"] for c in col["completions"]) == [1, 2, 3, 4]
    assert [c["id"] for c in col["completions"]] == [generated[c["n"] - 1]["id"] for c in col["completions"]]
    assert col["reward"]["best"] == pytest.approx(max(expected))
    assert col["reward"]["mean"] == pytest.approx(sum(expected) / 4)
    with session_scope() as s:
        lines = [json.loads(line) for line in runs.export_run(s, run["id"], "jsonl").splitlines()]
        assert "score" in runs.export_run(s, run["id"], "csv").splitlines()[0].split(",")
    assert [line["score"] for line in lines] == pytest.approx(got)


def test_scoring_without_best_of_n_keeps_generation_order_per_column(tiny_model):
    variants = [{"model": "tiny", "prompt": {"chat": False}, "decoding": {"max_new_tokens": 5}},
                {"model": "tiny", "label": "sampled", "prompt": {"chat": False},
                 "decoding": {"do_sample": True, "max_new_tokens": 5, "seed": 2, "num_return_sequences": 3}}]
    with session_scope(write=True) as s:
        run = compare.run_comparison(s, "I like to eat", variants)
    with session_scope(write=True) as s:
        scored = reward_scoring.score_run(s, run["id"], TOXICITY)
    for before, after in zip(run["columns"], scored["columns"], strict=True):
        assert [c["id"] for c in after["completions"]] == [c["id"] for c in before["completions"]]
        assert all(0.0 <= c["score"] <= 1.0 and not c.get("best") for c in after["completions"])
        assert after["reward"]["source"] == TOXICITY and after["reward"]["best_of_n"] is False
        assert after["reward"]["best"] == max(c["score"] for c in after["completions"])
    assert "reward" not in run and scored["reward"]["source"] == TOXICITY
