"""Template services: saved templates, example sources and selection, the context-window meter and its choices."""

import json

import pytest

from backend.db.engine import session_scope
from backend.errors import StudioError
from services import prompt_building as svc
from services.prompt_building import PromptSpec, build_prompt

REVIEWS = [
    {"review": "The pizza was cold and the delivery late.", "sentiment": "Negative"},
    {"review": "Fantastic film, the actors were brilliant.", "sentiment": "Positive"},
    {"review": "This movie bored me to tears.", "sentiment": "Negative"},
    {"review": "Best pasta in town, friendly waiters.", "sentiment": "Positive"},
]


def test_save_list_get_user_template(studio_env):
    with session_scope(write=True) as s:
        saved = svc.save_template(s, "ticket-triage", "Ticket: {ticket}\nTeam: {team}", task="classify",
                                  answer_field="team", instruction="Route each ticket to a team.",
                                  examples=[{"ticket": "My card was charged twice", "team": "billing"}])
        assert saved["source"] == "saved" and saved["input_fields"] == ["ticket"]
        with pytest.raises(StudioError, match="exists"):
            svc.save_template(s, "ticket-triage", "T: {ticket}")
        with pytest.raises(StudioError, match="built-in"):
            svc.save_template(s, "sentiment", "T: {x}")
        with pytest.raises(StudioError, match="after every other slot"):
            svc.save_template(s, "bad", "{team} {ticket}", answer_field="team")
        with pytest.raises(StudioError, match="lacks the field"):
            svc.save_template(s, "bad", "T: {ticket}\nTeam: {team}", answer_field="team", examples=[{"x": "y"}])
    with session_scope() as s:
        names = {t["name"]: t for t in svc.list_templates(s)}
        assert names["ticket-triage"]["source"] == "saved" and names["sentiment"]["source"] == "library"
        assert {t["name"] for t in svc.list_templates(s, task="classify")} >= {"ticket-triage", "sentiment"}
        built = build_prompt(s, PromptSpec(template="ticket-triage", shots=1), "I can't log in")
        assert built.text == ("Route each ticket to a team.\n\nTicket: My card was charged twice\nTeam: billing\n\n"
                              "Ticket: I can't log in\nTeam:")
        assert svc.template_details(s, "ticket-triage")["answer_field"] == "team"


def test_examples_typed_from_dataset_random_and_similar(studio_env, tmp_path):
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS))
    with session_scope() as s:
        typed = build_prompt(s, PromptSpec(template="sentiment", shots=1, examples=REVIEWS[:1]), "Meh.")
        assert "The pizza was cold" in typed.text and typed.label == "sentiment · one-shot"
        first = build_prompt(s, PromptSpec(template="sentiment", shots=2, example_dataset=str(data)), "Great!")
        assert [e["review"] for e in first.examples] == [REVIEWS[0]["review"], REVIEWS[1]["review"]]
        rnd = [build_prompt(s, PromptSpec(template="sentiment", shots=2, examples=REVIEWS, selection="random",
                                          seed=seed), "ok").examples for seed in (1, 1, 2, 3)]
        assert rnd[0] == rnd[1] and any(r != rnd[0] for r in rnd[2:])
        similar = build_prompt(s, PromptSpec(template="sentiment", shots=2, examples=REVIEWS, selection="similar"),
                               "What a boring movie, I nearly fell asleep.")
        assert [e["review"] for e in similar.examples][-1] == "This movie bored me to tears."  # most similar last
        assert {e["review"] for e in similar.examples} == {"This movie bored me to tears.",
                                                           "Fantastic film, the actors were brilliant."}
        own = build_prompt(s, PromptSpec(template="sentiment", shots=4, examples=REVIEWS), REVIEWS[0]["review"])
        assert len(own.examples) == 3 and "Only 3" in own.notes[0]  # the input itself is never its own example
        assert "fine-tune" in build_prompt(s, PromptSpec(template="sentiment", shots=6, examples=REVIEWS),
                                           "x").notes[-1]


def test_bad_template_inputs_give_clear_errors(studio_env, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "no review field"}) + "\n")
    cases = [
        (PromptSpec(), "", "empty"),
        (PromptSpec(template="nope"), "x", "Unknown template"),
        (PromptSpec(template="sentiment"), "", "empty"),
        (PromptSpec(shots=2), "x", "need a template"),
        (PromptSpec(template="rag-qa", shots=1, values={"context": "c"}), "x", "no answer slot"),
        (PromptSpec(template="rag-qa"), "x", "Fill \\{context\\}"),
        (PromptSpec(template="sentiment", shots=1, examples=[{"review": "x"}]), "y", "Example 1"),
        (PromptSpec(template="sentiment", shots=1, example_dataset=str(bad)), "y", "review"),
        (PromptSpec(template="sentiment", values={"review": "set"}), "typed too", "no empty slot"),
        (PromptSpec(template="cot-zero-shot", shots=1), "q", "no built-in examples"),
        (PromptSpec(template="sentiment", example_format="Review {review}"), "x", "does not appear"),
        (PromptSpec(template="sentiment", example_format="Review {review} -> {sentiment}"), "x", None),
    ]
    with session_scope() as s:
        for spec, text, message in cases:
            if message is None:
                assert build_prompt(s, spec, text).text == "Review x ->"
                continue
            with pytest.raises(StudioError, match=message):
                build_prompt(s, spec, text)


def test_context_meter_choices_drop_examples_and_truncate(tiny_model):
    long_examples = [{"review": "cake " * 300, "sentiment": "Positive"} for _ in range(4)]  # ~300 tokens each
    spec = PromptSpec(template="sentiment", shots=4, examples=long_examples)
    with session_scope() as s:
        tokenizer, window = svc.tokenizer_for(s, "tiny")
        assert window == 1024
        ok = build_prompt(s, PromptSpec(template="sentiment"), "nice", tokenizer=tokenizer, window=window,
                          max_new_tokens=100)
        assert ok.prompt.startswith("<|im_start|>user\nClassify this review") and ok.meter["fits"]
        assert ok.meter["prompt_tokens"] == len(tokenizer(ok.prompt, add_special_tokens=False).input_ids)
        with pytest.raises(StudioError, match=r"drop examples \(it fits with \d of 4\), truncate the input"):
            build_prompt(s, spec, "fine", tokenizer=tokenizer, window=window, max_new_tokens=200)
        preview = svc.preview_prompt(s, spec, "fine", model="tiny", max_new_tokens=200)
        assert preview["meter"]["fits"] is False and preview["choices"] == ["drop_examples", "truncate"]
        dropped = build_prompt(s, spec.model_copy(update={"on_overflow": "drop_examples"}), "fine",
                               tokenizer=tokenizer, window=window, max_new_tokens=200)
        assert 0 < dropped.dropped_examples < 4 and dropped.meter["fits"] and dropped.meter["free"] >= 0
        long_input = "word " * 2000
        with pytest.raises(StudioError, match="truncate the input"):
            build_prompt(s, PromptSpec(template="sentiment"), long_input, tokenizer=tokenizer, window=window,
                         max_new_tokens=64)
        cut = build_prompt(s, PromptSpec(template="sentiment", on_overflow="truncate"), long_input,
                           tokenizer=tokenizer, window=window, max_new_tokens=64)
        assert cut.truncated and cut.meter["fits"] and cut.meter["total"] <= 1024
        assert cut.text.startswith("Classify this review:\nword word") and cut.text.endswith("\nSentiment:")
    meter = svc.context_meter(950, 1024, 64)
    assert meter["fits"] is True and "of the context window" in meter["warning"]
