"""The real embedded model (SmolLM2-135M-Instruct, bootstrapped by `make test`): load and generate."""

import pytest

from backend.db.engine import session_scope
from backend.generation.decoding import DecodingConfig
from backend.models.store import add_model
from services.playground import run_generation

pytestmark = pytest.mark.integration


@pytest.fixture
def real_model(studio_env, real_model_dir_or_skip):
    with session_scope(write=True) as s:
        add_model(s, str(real_model_dir_or_skip), name="smollm2")
    return "smollm2"


def test_real_model_answers_and_is_recorded(real_model):
    from sqlalchemy import select

    from backend.db.tables import Completion

    with session_scope(write=True) as s:
        out = run_generation(s, real_model, "What is the capital of France?", DecodingConfig(max_new_tokens=24))
    completion = out["completions"][0]
    assert "Paris" in completion["text"]
    assert completion["finish_reason"] == "stop" and completion["completion_tokens"] > 3
    with session_scope() as s:
        row = s.scalar(select(Completion))
        assert row.model_name == "smollm2" and row.decoding["max_new_tokens"] == 24 and "Paris" in row.text


def test_real_model_batched_sampling_is_reproducible(real_model):
    cfg = DecodingConfig(do_sample=True, temperature=0.8, top_p=0.9, max_new_tokens=16, num_return_sequences=3, seed=11)
    with session_scope(write=True) as s:
        a = [c["text"] for c in run_generation(s, real_model, "Name a color.", cfg)["completions"]]
        b = [c["text"] for c in run_generation(s, real_model, "Name a color.", cfg)["completions"]]
    assert a == b and len(a) == 3
