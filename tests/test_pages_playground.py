"""The Playground, Compare, Documents and Runs pages under AppTest, on a fresh database with the tiny model."""

import json

from page_support import APP, TIMEOUT, button, count, page, texts
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from backend.db.engine import session_scope
from backend.db.tables import Campaign, Completion, PlaygroundRun
from services import compare, runs


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    return at


def saved_run(n_columns: int = 1) -> dict:
    variants = [{"model": "tiny", "decoding": {"max_new_tokens": 5}, "prompt": {"chat": False}},
                {"model": "tiny", "label": "sampled", "prompt": {"chat": False},
                 "decoding": {"do_sample": True, "temperature": 1.2, "max_new_tokens": 5, "seed": 3}}][:n_columns]
    with session_scope(write=True) as s:
        return compare.run_comparison(s, "I like to eat", variants)


# --- playground: generation ------------------------------------------------------------------------

def test_playground_renders_every_control_with_help(studio):
    at = ok(page("page_playground.py"))
    assert at.selectbox(key="pg-model").value == "tiny"
    assert not button(at, "Generate").disabled
    assert "No runs yet." in texts(at.caption)
    assert at.radio(key="pg-method").options == ["Greedy", "Sampling", "Beam search"]
    for key in ("pg-t", "pg-p", "pg-rep", "pg-minp", "pg-typp", "pg-freq", "pg-pres"):
        assert at.slider(key=key).help, key
    for key in ("pg-k", "pg-max", "pg-min", "pg-ngram", "pg-seed", "pg-n"):
        assert at.number_input(key=key).help, key
    assert at.text_area(key="pg-stop").help and at.selectbox(key="pg-precision").options[-1] == "int8"
    assert at.slider(key="pg-t").disabled  # greedy: sampling controls are shown but off


def test_preset_sets_the_controls(studio):
    at = page("page_playground.py")
    at.selectbox(key="pg-preset").select("creative").run()
    assert at.radio(key="pg-method").value == "Sampling" and at.slider(key="pg-t").value == 1.1
    assert at.slider(key="pg-p").value == 0.95 and not at.slider(key="pg-t").disabled
    at.selectbox(key="pg-preset").select("beam-search").run()
    assert at.radio(key="pg-method").value == "Beam search" and at.number_input(key="pg-beams").value == 4
    assert at.number_input(key="pg-ngram").value == 3


def test_playground_streams_shows_metrics_and_saves_run(studio):
    at = page("page_playground.py")
    at.selectbox(key="pg-preset").select("creative").run()  # sampling: the random model then writes visible tokens
    at.text_area(key="pg-prompt").input("Hello there")
    at.number_input(key="pg-max").set_value(8)
    at.number_input(key="pg-seed").set_value(7)
    button(at, "Generate").click().run()
    ok(at)
    assert [m.label for m in at.metric] == ["Tokens/s", "Time to first token", "Tokens", "Finish"]
    with session_scope() as s:
        row = s.scalars(select(Completion)).one()
        run = s.scalars(select(PlaygroundRun)).one()
        assert (row.model_name, row.item_id, row.run_id, row.seed) == ("tiny", None, run.id, 7)
        assert row.decoding["temperature"] == 1.1 and row.completion_tokens >= 1
    assert row.text.strip() and row.text.strip() in texts(at.markdown)
    assert len(at.dataframe) == 1 and at.session_state["pg-last-run"] == run.id
    at.run()  # a later rerun still shows the last run's output
    assert row.text.strip() in texts(at.markdown)


def test_every_control_reaches_the_saved_settings(studio):
    at = page("page_playground.py")
    at.radio(key="pg-mode").set_value("Raw completion")
    at.radio(key="pg-method").set_value("Sampling").run()
    for key, value in {"pg-t": 0.8, "pg-p": 0.9, "pg-rep": 1.2, "pg-minp": 0.05, "pg-typp": 0.95, "pg-freq": 0.5,
                       "pg-pres": 0.3}.items():
        at.slider(key=key).set_value(value)
    for key, value in {"pg-k": 40, "pg-max": 6, "pg-min": 2, "pg-ngram": 3, "pg-seed": 5, "pg-n": 2}.items():
        at.number_input(key=key).set_value(value)
    at.text_area(key="pg-stop").input("zzz\n\\n\\n")
    at.text_area(key="pg-prompt").input("I like to eat")
    at.run()
    button(at, "Generate").click().run()
    ok(at)
    with session_scope() as s:
        rows = s.scalars(select(Completion)).all()
    assert len(rows) == 2 and rows[0].prompt_text == "I like to eat"  # raw mode: no chat template
    d = rows[0].decoding
    assert (d["temperature"], d["top_k"], d["top_p"], d["min_p"], d["typical_p"]) == (0.8, 40, 0.9, 0.05, 0.95)
    assert (d["repetition_penalty"], d["frequency_penalty"], d["presence_penalty"]) == (1.2, 0.5, 0.3)
    assert (d["max_new_tokens"], d["min_new_tokens"], d["no_repeat_ngram_size"], d["seed"]) == (6, 2, 3, 5)
    assert d["stop"] == ["zzz", "\n\n"] and d["num_return_sequences"] == 2
    assert sum("Completion " in c for c in texts(at.caption).splitlines()) == 2


def test_empty_prompt_and_contradictory_settings_are_messages(studio):
    at = page("page_playground.py")
    button(at, "Generate").click().run()
    assert not at.exception and "prompt is empty" in texts(at.error)
    at.number_input(key="pg-max").set_value(8)
    at.number_input(key="pg-min").set_value(20).run()
    assert "cannot exceed max_new_tokens" in texts(at.error) and button(at, "Generate").disabled
    at.number_input(key="pg-min").set_value(0)
    at.radio(key="pg-method").set_value("Beam search").run()
    at.number_input(key="pg-n").set_value(5).run()
    assert "at most num_beams" in texts(at.error)
    assert count(Completion) == 0


# --- playground: next-token view, templates, retrieval ---------------------------------------------

def test_next_token_view_follows_the_controls(studio):
    at = page("page_playground.py")
    at.text_area(key="pg-prompt").input("I like to eat")
    at.radio(key="pg-method").set_value("Sampling")
    at.slider(key="pg-rep").set_value(1.0).run()  # the preset's repetition penalty would add a stage
    ok(at)
    assert len(at.get("plotly_chart")) == 1  # the seeds' cake/donut example
    at.toggle(key="pg-nt-on").set_value(True).run()
    ok(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    before = json.loads(charts[1].proto.spec)["data"]
    assert [bar["name"] for bar in before] == ["Model"]  # T=1, no top-k/top-p: nothing changes the distribution
    at.slider(key="pg-t").set_value(0.5)
    at.number_input(key="pg-k").set_value(3).run()
    after = json.loads(at.get("plotly_chart")[1].proto.spec)["data"]
    assert [bar["name"] for bar in after] == ["Model", "After temperature", "After top-k"]
    assert sum(p > 0 for p in after[2]["y"]) == 3 and max(after[1]["y"]) > max(after[0]["y"])
    toy = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert toy[-1]["x"][:3] == ["cake", "donut", "banana"] and toy[-1]["y"][3] == 0  # apple is never picked


def test_few_shot_from_similar_examples_with_meter_and_saved_template(studio):
    at = page("page_playground.py")
    at.selectbox(key="pg-template").select("sentiment").run()
    at.number_input(key="pg-shots").set_value(1).run()
    at.radio(key="pg-ex-src").set_value("Typed by hand")
    at.radio(key="pg-ex-sel").set_value("Most similar to the input (embeddings + faiss)").run()
    at.text_area(key="pg-ex-typed").input(
        '{"review": "The pizza was cold and late.", "sentiment": "Negative"}\n'
        '{"review": "The movie was a joy from start to end.", "sentiment": "Positive"}')
    at.text_area(key="pg-prompt").input("What a wonderful film!").run()
    ok(at)
    preview = next(c.value for c in at.code if "Classify this review" in c.value)
    assert "joy from start to end" in preview and "pizza" not in preview  # the most similar example
    assert any("Context window:" in str(p.proto.text) for p in at.get("progress"))
    at.text_input(key="pg-save-name").input("my sentiment")
    button(at, "Save template").click().run()
    ok(at)
    assert "my sentiment" in at.selectbox(key="pg-template").options
    at.number_input(key="pg-max").set_value(6)
    button(at, "Generate").click().run()
    ok(at)
    with session_scope() as s:
        assert s.scalars(select(Completion.template)).one() == "sentiment · one-shot"


def test_context_overflow_offers_drop_examples(studio):
    at = page("page_playground.py")
    at.selectbox(key="pg-template").select("qa").run()
    at.number_input(key="pg-shots").set_value(3)
    at.number_input(key="pg-max").set_value(850)
    at.text_area(key="pg-prompt").input("Who won the World Series in 2019?").run()
    assert "drop examples" in texts(at.warning)
    button(at, "Drop examples").click().run()
    assert at.radio(key="pg-overflow").value == "Drop examples"
    assert not at.warning and any("Dropped" in c for c in texts(at.caption).splitlines())


def test_rag_answer_lists_its_sources(studio):
    from backend.rag import collections as rag

    with session_scope(write=True) as s:
        rag.add_documents(s, "zoo", [("penguins.md", b"Emperor penguins breed in Antarctica in winter."),
                                     ("etna.txt", b"Mount Etna in Sicily is an active volcano.")])
    at = page("page_playground.py")
    at.selectbox(key="pg-rag").select("zoo").run()
    at.number_input(key="pg-rag-k").set_value(1)
    at.number_input(key="pg-max").set_value(5)
    at.text_area(key="pg-prompt").input("Where do penguins breed?").run()
    button(at, "Generate").click().run()
    ok(at)
    assert "**Sources**" in texts(at.markdown)
    assert any("penguins.md #1" in e.label for e in at.expander)


# --- runs, compare, documents ----------------------------------------------------------------------

def test_runs_page_reruns_exports_and_sends_to_labeling(studio):
    run = saved_run(2)
    at = ok(page("page_runs.py"))
    assert at.selectbox(key="runs-pick").value == run["id"]
    assert [b.label for b in at.get("download_button")] == ["Download JSON", "Download JSONL", "Download CSV"]
    at.number_input(key="runs-seed").set_value(0)
    button(at, "Rerun").click().run()
    ok(at)
    assert count(PlaygroundRun) == 2 and "Saved as run" in texts(at.success)
    at.selectbox(key="runs-reopen-col").select(1)
    button(at, "Reopen").click().run()
    assert not at.exception and at.session_state["pg-reopen"]["column"] == 1  # the Playground loads it
    at.text_input(key="runs-camp-name").input("compare me")
    next(b for b in at.button if b.label == "Create campaign").click().run()
    ok(at)
    assert "Campaign **compare me** created" in texts(at.success)
    with session_scope() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert campaign.k == 2 and [src["label"] for src in campaign.sources] == [c["label"] for c in run["columns"]]


def test_reopen_loads_a_run_into_the_playground(studio):
    run = saved_run(2)
    at = AppTest.from_file(str(APP / "page_playground.py"), default_timeout=TIMEOUT)
    at.session_state["pg-reopen"] = {"run_id": run["id"], "column": 1, "input": run["input"], "model": "tiny",
                                     "variant": run["variants"][1]}
    at.run()
    ok(at)
    assert at.text_area(key="pg-prompt").value == "I like to eat"
    assert at.radio(key="pg-mode").value == "Raw completion" and at.radio(key="pg-method").value == "Sampling"
    assert at.slider(key="pg-t").value == 1.2 and at.number_input(key="pg-seed").value == 3
    assert run["columns"][1]["completions"][0]["text"].strip() in texts(at.markdown)


def test_compare_runs_three_variants_side_by_side(studio):
    at = ok(page("page_compare.py"))
    at.text_area(key="cmp-input").input("I like to eat")
    for i in range(3):
        at.number_input(key=f"cmp{i}-max").set_value(5)
    button(at, "Run all variants").click().run()
    ok(at)
    with session_scope() as s:
        run = runs.get_run(s, s.scalars(select(PlaygroundRun.id)).one())
    assert len(run["columns"]) == 3 and run["kind"] == "compare"
    assert [c["label"].split(" · ")[-1] for c in run["columns"]][:2] == ["greedy", "sample T0.7 p0.9 k50"]
    summary = at.dataframe[0].value
    assert list(summary["variant"]) == [c["label"] for c in run["columns"]] and (summary["tokens/s"] > 0).all()


def test_documents_page_lists_searches_and_removes(studio):
    from backend.rag import collections as rag

    at = ok(page("page_documents.py"))
    assert "No collection yet" in texts(at.info)
    with session_scope(write=True) as s:
        rag.add_documents(s, "zoo", [("penguins.md", b"Emperor penguins breed in Antarctica in winter."),
                                     ("etna.txt", b"Mount Etna in Sicily is an active volcano.")])
    at.run()
    at.text_input(key="doc-query").input("volcano in Italy").run()
    ok(at)
    assert "[1] etna.txt #1" in texts(at.caption)
    at.selectbox(key="doc-remove-pick").select("etna.txt")
    button(at, "Remove document").click().run()
    ok(at)
    assert "Removed etna.txt from zoo." in texts(at.success)
    with session_scope() as s:
        assert rag.collection_info(s, "zoo")["documents"] == 1


def test_loaded_model_is_shared_across_reruns_and_users(studio, monkeypatch):
    from backend.models import loader

    loader.clear_cache()
    real, loads = loader.load_uncached, []
    monkeypatch.setattr(loader, "load_uncached", lambda *args: loads.append(args) or real(*args))
    for _ in range(2):  # two AppTests are two browser sessions (two users) in one server process
        at = page("page_playground.py")
        at.text_area(key="pg-prompt").input("Hello")
        at.number_input(key="pg-max").set_value(3)
        button(at, "Generate").click().run()
        ok(at).run()  # and a rerun
    assert len(loads) == 1 and count(PlaygroundRun) == 2
