"""Templates and in-context learning (pure): the course's verbatim zero/one/few-shot prompts, CoT, validation."""

import pytest

from backend.errors import StudioError
from backend.prompts import fewshot
from backend.prompts.cot import extract_final_answer
from backend.prompts.fewshot import FewShotTemplate, build_prompt
from backend.prompts.library import LIBRARY, format_context

PIZZA_QUESTION = ("You are ordering pizza for a meetup event for 20 people. If each pizza has 8 slices and you think "
                  "every attendee eats 2 slices, how many pizzas do you need to order?")
from backend.prompts.templates import SUMMARY_TEMPLATES, render, resolve_template, template_fields

SENTIMENT = LIBRARY["sentiment"]


def test_sentiment_zero_one_few_shot_are_the_course_prompts():
    zero = build_prompt(SENTIMENT, {"review": "I loved this movie!"})
    assert zero == "Classify this review:\nI loved this movie!\nSentiment:"
    one = build_prompt(SENTIMENT, {"review": "I don't like this chair"}, SENTIMENT.examples[:1])
    assert one == ("Classify this review:\nI loved this movie!\nSentiment: Positive\n\n"
                   "Classify this review:\nI don't like this chair\nSentiment:")
    few = build_prompt(SENTIMENT, {"review": "Who would use this product?"}, SENTIMENT.examples)
    assert few == ("Classify this review:\nI loved this movie!\nSentiment: Positive\n\n"
                   "Classify this review:\nI don't like this chair\nSentiment: Negative\n\n"
                   "Classify this review:\nWho would use this product?\nSentiment:")
    assert fewshot.shot_name(0) == "zero-shot" and fewshot.shot_name(2) == "few-shot (2)"


def test_world_series_shots_come_before_the_human_turn():
    qa = LIBRARY["qa"]
    prompt = build_prompt(qa, {"question": "Who won the 2016 baseball World Series?"}, qa.examples)
    assert prompt.count("Human:") == 4 and prompt.endswith("Human: Who won the 2016 baseball World Series?\n\nAssistant:")
    assert prompt.index("Dodgers") < prompt.rindex("Human:")


def test_summary_library_prompt_equals_the_job_templates_and_keeps_jobs_working():
    for name, text in SUMMARY_TEMPLATES.items():
        assert LIBRARY[name].query_text == text
        assert build_prompt(LIBRARY[name], {"dialogue": "A: hi"}) == text.format(dialogue="A: hi")
    assert len([n for n in SUMMARY_TEMPLATES if n.startswith("flan-")]) == 7
    assert resolve_template("short-summary") == SUMMARY_TEMPLATES["short-summary"]
    assert template_fields(SUMMARY_TEMPLATES["summarize-conversation"]) == ["dialogue"]
    assert render("{a} {b}", {"a": 1, "b": 2}) == "1 2"
    shot = fewshot.render_shot(LIBRARY["summarize-conversation"], {"dialogue": "A: hi", "summary": "A greets."})
    assert shot.endswith("Summary: A greets.")


def test_form_variables_defaults_and_instruction():
    tr = LIBRARY["translate"]
    assert tr.input_fields == ["source_language", "target_language", "text"]
    assert build_prompt(tr, {"text": "Good morning", "target_language": "German"}) == (
        "Translate this sentence from English to German.\nEnglish: Good morning\nGerman:")
    ner = build_prompt(LIBRARY["ner"], {"text": "Ada lives in Rome."}, LIBRARY["ner"].examples[:1])
    assert ner.startswith("Identify all of the people and places") and ner.endswith("Text: Ada lives in Rome.\nEntities:")
    with pytest.raises(StudioError, match="text"):
        build_prompt(tr, {})


def test_chain_of_thought_zero_and_few_shot():
    zero = build_prompt(LIBRARY["cot-zero-shot"], {"question": PIZZA_QUESTION}, cot=True)
    assert zero.endswith("Answer: Let's think step by step.")
    assert build_prompt(SENTIMENT, {"review": "ok"}, cot=True).endswith("Sentiment: Let's think step by step.")
    cot = LIBRARY["cot-few-shot"]
    few = build_prompt(cot, {"question": PIZZA_QUESTION}, cot.examples)
    assert "Step 2: 4 + 24 = 28. End: The answer is 28." in few and few.endswith("pizzas do you need to order?\nAnswer:")
    assert extract_final_answer(cot.examples[0]["reasoning"]) == "28"


@pytest.mark.parametrize("text,answer,number", [
    ("Step 1: 20 people × 2 slices = 40 slices. Step 2: 40 / 8 = 5. The answer is 5 pizzas.", "5 pizzas", "5"),
    ("The answer is 3. Wait, recount. The answer is 4.", "4", "4"),
    ("Reasoning...\nFinal answer: Paris", "Paris", None),
    ("so x = 12\n#### 12", "12", "12"),
    ("The total is \\boxed{1,250}", "1,250", "1250"),
    ("She answered 3 times, then 7 more.", "7", "7"),  # "answered" is no marker: last number
    ("I am not sure.", None, None),
])
def test_extract_final_answer(text, answer, number):
    assert extract_final_answer(text) == answer
    assert extract_final_answer(text, numeric=True) == number


def test_template_validation_messages():
    with pytest.raises(StudioError, match="after every other slot"):
        FewShotTemplate("x", "Answer: {answer}\nQuestion: {question}", answer_field="answer")
    with pytest.raises(StudioError, match="does not appear"):
        FewShotTemplate("x", "Q: {question}", answer_field="answer")
    with pytest.raises(StudioError, match="braces"):
        FewShotTemplate("x", "Q: {question")
    with pytest.raises(StudioError, match="not a valid slot"):
        FewShotTemplate("x", "Q: {question.__class__}")
    with pytest.raises(StudioError, match="no \\{field\\} slot"):
        FewShotTemplate("x", "just text")
    with pytest.raises(StudioError, match="lacks the field"):
        fewshot.render_shot(SENTIMENT, {"review": "meh"})
    with pytest.raises(StudioError, match="no answer slot"):
        build_prompt(LIBRARY["rag-qa"], {"context": "c", "question": "q"}, [{"context": "c", "question": "q"}])
    literal = FewShotTemplate("json", 'Reply as {{"label": ...}}: {text}\nLabel: {label}', answer_field="label")
    assert build_prompt(literal, {"text": "hi"}) == 'Reply as {"label": ...}: hi\nLabel:'


def test_fit_examples_drops_the_farthest_first_and_shot_advice():
    examples = [{"i": str(i)} for i in range(4)]
    kept, _, tokens = fewshot.fit_examples(lambda exs: "x" * (10 + 10 * len(exs)), examples, len, 35)
    assert [e["i"] for e in kept] == ["2", "3"] and tokens == 30
    assert fewshot.fit_examples(lambda exs: "x" * 99, examples, len, 10)[0] == []
    assert fewshot.shot_advice(5) is None and "fine-tune" in fewshot.shot_advice(6)


def test_format_context_numbers_and_cites_chunks():
    text = format_context([{"doc": "a.md", "chunk": 0, "text": "Alpha. "}, {"doc": "b.pdf", "chunk": 3, "text": "Beta"}])
    assert text == "[1] (a.md, chunk 0)\nAlpha.\n\n[2] (b.pdf, chunk 3)\nBeta"
