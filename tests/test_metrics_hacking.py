"""Reward-hacking signs: repetition and refusal, on hand-made completions."""

import pytest

from backend.metrics.hacking import refusal, repetition


@pytest.mark.parametrize(("text", "expected"), [
    ("", 0.0),
    ("Thank you.", 0.0),
    ("the cat sat on the mat", 0.0),
    ("go go go go", 0.5),  # (go go go) twice: the second repeats the first
    ("I am fine. I am fine. I am fine.", 4 / 7),
])
def test_repetition(text, expected):
    assert repetition(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.", "I cannot do that.", "Sorry — no.", "As an AI, I don't insult people.",
    "  I won't write that.", "I am unable to comply.", "Unfortunately, I can't.", "I don't feel comfortable with this.",
    "I'm afraid I can't do that.", "I'm not able to help with that.", "—I'm sorry, I cannot write that message.",
    "I'm sorry, but as a help with code, I don't have the ability to analyze the responses.",
    "I'm just an AI and do not take sides.", "I do not have the ability to browse.",
])
def test_refusals(text):
    assert refusal(text) == 1.0


@pytest.mark.parametrize("text", [
    "Your coworker might just be having a bad day; try talking to them.",
    "Here is a kinder way to say it: I disagree with you.",
    "He said he was sorry, and I can't blame him.",  # not an opening refusal
    "Cannot-do attitudes are common in offices.",
    # an apology that goes on to answer, and "I can't" as a figure of speech (both seen in PPO completions)
    "I'm sorry for the confusion, but I'm happy to assist you with the message.",
    "—I am sorry for the unintended offense. Here is a kinder reply.",
    "I can't believe you're having a moment to provide a detailed message.",
    "I can't wait to hear how the meeting goes!",
    "Sorry to hear that; a fan could help.",
    "I'm an AI device dedicated to creativity and assistance.",
])
def test_answers_are_not_refusals(text):
    assert refusal(text) == 0.0
