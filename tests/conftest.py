"""Shared fixtures: an isolated data dir + database per test, and tiny random models.

Database backends: ``studio_env`` gives SQLite, or — in modules marked ``pytest.mark.databases("sqlite",
"postgres")`` — one variant per backend (test ids ``[sqlite]``/``[postgres]``); a test's own ``databases`` mark
narrows its module's. ``--db=sqlite|postgres|both`` (or env ``STUDIO_TEST_DB``; default both) picks which run. The
PostgreSQL variants use a throwaway server (tests/pg_support.py) and SKIP with the reason when it cannot start.

Tests run offline. Unit tests use a 2-layer, hidden-64 random Llama built here (seconds, <1 GB);
tests marked ``integration`` use the real embedded model from the developer's data dir.
"""

import json
import os
import sys
from pathlib import Path

import pytest
from browser_support import browser_studio  # noqa: F401 (a fixture: a running studio + chromium, for browser tests)
from page_support import studio  # noqa: F401 (a fixture: a fresh studio with the tiny model as default, for AppTests)

REPO = Path(__file__).resolve().parent.parent
REAL_DATA_DIR = Path(os.environ.get("STUDIO_DATA_DIR", REPO / "studio-data")).resolve()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


DB_CHOICES = ("sqlite", "postgres", "both")


def pytest_addoption(parser):
    parser.addoption("--db", choices=DB_CHOICES, default=None,
                     help="database backend(s) for tests marked `databases` (default: env STUDIO_TEST_DB, else both)")


def pytest_configure(config):
    config.addinivalue_line("markers", "databases(*names): run the test once per named backend (sqlite, postgres)")


def selected_backends(config) -> tuple[str, ...]:
    choice = config.getoption("--db") or os.environ.get("STUDIO_TEST_DB") or "both"
    if choice not in DB_CHOICES:
        raise pytest.UsageError(f"STUDIO_TEST_DB={choice!r}: use one of {', '.join(DB_CHOICES)}")
    return ("sqlite", "postgres") if choice == "both" else (choice,)


def pytest_generate_tests(metafunc):
    if "db_backend" not in metafunc.fixturenames:
        return
    mark = metafunc.definition.get_closest_marker("databases")
    if mark is None:
        return  # the fixture's default: SQLite
    wanted = [b for b in mark.args if b in selected_backends(metafunc.config)]
    if not wanted:  # e.g. a SQLite-only test under --db=postgres: shown as skipped, with why
        only = mark.args[0]
        metafunc.parametrize("db_backend", [pytest.param(only, marks=pytest.mark.skip(
            reason=f"runs on {' and '.join(mark.args)} only; --db/STUDIO_TEST_DB did not select it"))],
            indirect=True)
        return
    metafunc.parametrize("db_backend", wanted, indirect=True)


@pytest.fixture
def db_backend(request) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for the session (tests/pg_support.py); skips the test when none can start."""
    from pg_support import PostgresUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        cluster, reason = None, str(exc)
    except Exception as exc:  # noqa: BLE001 - any start-up failure is a skip with its reason, never a pass
        cluster, reason = None, f"{type(exc).__name__}: {exc}"
    yield cluster if cluster is not None else reason
    if cluster is not None:
        cluster.stop()


@pytest.fixture
def pg_server(pg_cluster):
    """The session's PostgreSQL cluster (skip with the reason when none could start)."""
    if isinstance(pg_cluster, str):
        pytest.skip(f"PostgreSQL test server unavailable: {pg_cluster}")
    return pg_cluster


@pytest.fixture
def database_url(db_backend, request):
    """None for SQLite in the data dir; for PostgreSQL the URL of a fresh migrated database, dropped afterwards."""
    if db_backend == "sqlite":
        yield None
        return
    cluster = request.getfixturevalue("pg_server")
    name = cluster.fresh_database()
    try:
        yield cluster.url(name)
    finally:
        from backend.db.engine import reset_engines

        reset_engines()
        cluster.drop_database(name)


@pytest.fixture(autouse=True)
def keep_main_module():
    """Streamlit's script runner (AppTest) installs the page it ran as ``sys.modules["__main__"]`` and leaves it
    there; a later ``spawn`` child would then re-run that page as its main script and die before doing its work.
    Put the real ``__main__`` back after every test."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: on a busy 2-core machine two threads spin against each other, and one is
    faster for the tiny models. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def studio_env(tmp_path, monkeypatch, database_url):
    """Point the studio at a fresh data dir and database (SQLite in it, or PostgreSQL: see ``db_backend``);
    yields the data dir."""
    from backend.db.engine import reset_engines, upgrade_database
    from backend.settings import reset_settings_cache

    data = tmp_path / "studio-data"
    monkeypatch.setenv("STUDIO_DATA_DIR", str(data))
    if database_url is None:
        monkeypatch.delenv("STUDIO_DATABASE_URL", raising=False)
    else:  # child processes (workers, jobs, CLI) inherit it
        monkeypatch.setenv("STUDIO_DATABASE_URL", database_url)
    monkeypatch.setenv("STUDIO_WORKER_AUTOSTART", "false")
    # tests keep datasets and outputs beside the data dir (tmp_path, tmp_path_factory folders)
    monkeypatch.setenv("STUDIO_ALLOWED_PATHS", str(tmp_path.parent))
    reset_settings_cache()
    reset_engines()
    upgrade_database()
    yield data
    reset_engines()
    reset_settings_cache()


def _build_tiny_model(folder: Path) -> Path:
    """A 2-layer random Llama with a real (byte-level BPE) tokenizer and a ChatML chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "Summarize the following conversation. Summary: #Person1#: #Person2#: hello thanks booking refund",
        "The capital of France is Paris. user assistant system cake donut banana apple",
    ] * 50
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   bos_token="<|im_start|>", unk_token="<|endoftext|>")
    fast.chat_template = (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         bos_token_id=fast.bos_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return _build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def tiny_model(studio_env, tiny_model_dir):
    """The tiny model registered under the name 'tiny'; yields its ResolvedModel."""
    from backend.db.engine import session_scope
    from backend.models.store import add_model, resolve

    with session_scope(write=True) as s:
        add_model(s, str(tiny_model_dir), name="tiny")
        return resolve(s, "tiny")


def real_model_dir() -> Path:
    return REAL_DATA_DIR / "models" / "smollm2-135m-instruct"


@pytest.fixture
def real_model_dir_or_skip() -> Path:
    folder = real_model_dir()
    if not (folder / "config.json").is_file():
        pytest.skip("embedded model not bootstrapped: run `studio models bootstrap` (make test does)")
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
