"""The built-in template library for the course's tasks (pure data).

Each template is a ``FewShotTemplate``: the example format with the answer slot last, optional
built-in worked examples (used when the user picks no dataset), and defaults for secondary slots.
Sources are the course texts (digest A §1, digest B §1, §7):

- summarize a dialogue: the studio's four phrasings (the job runners' ``SUMMARY_TEMPLATES``) and
  the seven FLAN "samsum" phrasings; the prompt part of each equals its ``SUMMARY_TEMPLATES`` text;
- sentiment: the verbatim zero/one/few-shot review template ("Classify this review: …");
- Amazon reviews: rating, generated review, one-line description (``review_body``);
- named entities, translation, question answering (the World Series shots, ``Human:``/``Assistant:``);
- chain-of-thought: zero-shot ("Let's think step by step.") and the golf-ball worked example;
- retrieval QA: the RetrievalQA prompt with ``{context}`` and ``{question}``.
"""

from backend.prompts.fewshot import FewShotTemplate, plain_template
from backend.prompts.templates import SUMMARY_TEMPLATES

_DIALOGUE_EXAMPLES = (
    {"dialogue": "#Person1#: Hi, I'd like to book a table for two tonight at eight.\n"
                 "#Person2#: Sorry, eight is full. Would half past eight work?\n#Person1#: Yes, that's fine.",
     "summary": "#Person1# books a table for two at half past eight because eight is full."},
    {"dialogue": "#Person1#: My order arrived broken.\n#Person2#: I'm sorry. I can send a replacement or refund "
                 "you.\n#Person1#: A refund, please.\n#Person2#: Done, you'll see it in three days.",
     "summary": "#Person1#'s order arrived broken, so #Person2# refunds it within three days."},
)

_SUMMARY_PHRASINGS = {
    "summarize-conversation": "Summarize the following conversation (the DialogSum lab prompt).",
    "short-summary": "Here is a dialogue … Write a short summary (DialogSum zero-shot).",
    "what-summary": "Dialogue … What is a summary of this dialogue?",
    "briefly": "… Briefly summarize that dialogue.",
    "flan-briefly": "FLAN samsum #1: … Briefly summarize that dialogue.",
    "flan-short-summary": "FLAN samsum #2: Here is a dialogue … Write a short summary!",
    "flan-what-summary": "FLAN samsum #3: What is a summary of this dialogue?",
    "flan-two-sentences": "FLAN samsum #4: What was that dialogue about, in two sentences or less?",
    "flan-talking-about": "FLAN samsum #5: What were they talking about?",
    "flan-main-points": "FLAN samsum #6: What were the main points in that conversation?",
    "flan-going-on": "FLAN samsum #7: What was going on in that conversation?",
}


def _summary(name: str) -> FewShotTemplate:
    text = SUMMARY_TEMPLATES[name]
    text += " {summary}" if text.endswith(":") else "\n{summary}"  # the answer follows "Summary:" or a new line
    return FewShotTemplate(name=name, task="summarize", text=text,
                           answer_field="summary", description=_SUMMARY_PHRASINGS[name],
                           examples=_DIALOGUE_EXAMPLES)


_TEMPLATES: list[FewShotTemplate] = [_summary(name) for name in _SUMMARY_PHRASINGS] + [
    FewShotTemplate(
        name="sentiment", task="classify",
        text="Classify this review:\n{review}\nSentiment: {sentiment}", answer_field="sentiment",
        description="The course's review classifier: zero-shot, one-shot (a positive example), few-shot (a "
                    "positive and a negative one — mixing classes helps).",
        examples=({"review": "I loved this movie!", "sentiment": "Positive"},
                  {"review": "I don't like this chair", "sentiment": "Negative"}),
    ),
    FewShotTemplate(
        name="review-rating", task="classify",
        text="Predict the associated rating from the following review:\n{review_body}\nRating: {rating}",
        answer_field="rating", description="Amazon reviews: predict the star rating of review_body.",
        examples=({"review_body": "Works exactly as described and arrived early.", "rating": "5"},
                  {"review_body": "Stopped working after two days.", "rating": "1"}),
    ),
    FewShotTemplate(
        name="review-generate", task="generate",
        text="Generate a {star_rating}-star review (1 being lowest and 5 being highest) about this product: "
             "{product_title}.\nReview: {review_body}",
        answer_field="review_body", description="Amazon reviews: write a review with a given star rating.",
        defaults={"star_rating": "5"},
        examples=({"star_rating": "2", "product_title": "Travel mug",
                   "review_body": "Keeps coffee warm for an hour at most and the lid leaks."},),
    ),
    FewShotTemplate(
        name="review-describe", task="summarize",
        text="Give a short sentence describing the following product review:\n{review_body}\nDescription: "
             "{description}",
        answer_field="description", description="Amazon reviews: a one-line description of a review.",
        examples=({"review_body": "The blender is loud but crushes ice in seconds and cleans easily.",
                   "description": "A powerful, easy-to-clean but noisy blender."},),
    ),
    FewShotTemplate(
        name="ner", task="extract",
        instruction="Identify all of the people and places mentioned in the text.",
        text="Text: {text}\nEntities: {entities}", answer_field="entities",
        description="Named entities: people and places, one line per text.",
        examples=({"text": "Angela met Tom in Paris before flying to Lisbon.",
                   "entities": "PERSON: Angela, Tom; PLACE: Paris, Lisbon"},
                  {"text": "Charlie the cat sleeps all day in Ravi's kitchen in Leeds.",
                   "entities": "PERSON: Ravi; PLACE: Leeds"}),
    ),
    FewShotTemplate(
        name="translate", task="translate",
        text="Translate this sentence from {source_language} to {target_language}.\n{source_language}: {text}\n"
             "{target_language}: {translation}",
        answer_field="translation", description="Translate a sentence (the languages are form fields).",
        defaults={"source_language": "English", "target_language": "French"},
        examples=({"source_language": "English", "target_language": "French", "text": "Where is the train station?",
                   "translation": "Où est la gare ?"},
                  {"source_language": "English", "target_language": "Spanish", "text": "I would like a coffee.",
                   "translation": "Me gustaría un café."}),
    ),
    FewShotTemplate(
        name="qa", task="answer",
        text="Human: {question}\n\nAssistant: {answer}", answer_field="answer",
        description="Question answering with Human:/Assistant: indicators; the World Series shots make the "
                    "model copy the short answer pattern (winner and loser).",
        examples=(
            {"question": "Who won the baseball World Series in 2022?",
             "answer": "The Houston Astros won the World Series in 2022. They defeated the Philadelphia Phillies."},
            {"question": "Who won the baseball World Series in 2021?",
             "answer": "The Atlanta Braves won the World Series in 2021. They defeated the Houston Astros."},
            {"question": "Who won the baseball World Series in 2020?",
             "answer": "The Los Angeles Dodgers won the World Series in 2020. They defeated the Tampa Bay Rays."},
        ),
    ),
    FewShotTemplate(
        name="cot-zero-shot", task="reason",
        text="Question: {question}\nAnswer: {answer}", answer_field="answer",
        cot_trigger="Let's think step by step.",
        description="Zero-shot chain-of-thought: the answer starts with 'Let's think step by step.' Turn on "
                    "chain-of-thought to add the cue.",
    ),
    FewShotTemplate(
        name="cot-few-shot", task="reason",
        text="Question: {question}\nAnswer: {reasoning}", answer_field="reasoning",
        description="Few-shot chain-of-thought: worked reasoning that ends 'The answer is N.'; the final answer "
                    "is pulled out of the completion.",
        examples=({"question": "Sarah has 4 golf balls. She buys 2 more packages of golf balls. Each package has "
                               "12 golf balls. How many golf balls does she have now?",
                   "reasoning": "Start: Sarah started with 4 golf balls. Step 1: 2 packages of 12 golf balls each "
                                "is 24 golf balls. Step 2: 4 + 24 = 28. End: The answer is 28."},),
    ),
    plain_template(
        "rag-qa",
        "Human: Use the following pieces of context to provide a concise answer to the question at the end. If "
        "you don't know the answer, just say that you don't know, don't try to make up an answer.\n\n{context}\n\n"
        "Question: {question}\nAssistant:",
        task="retrieval",
        description="Retrieval-augmented QA (RetrievalQA prompt): {context} is filled with the top chunks.",
    ),
]

LIBRARY: dict[str, FewShotTemplate] = {t.name: t for t in _TEMPLATES}
RAG_TEMPLATE = "rag-qa"
def format_context(hits: list[dict]) -> str:
    """Retrieved chunks as numbered, cited passages for a ``{context}`` slot: ``[1] (doc.md, chunk 3)\\n…``."""
    return "\n\n".join(f"[{i}] ({h['doc']}, chunk {h['chunk']})\n{h['text'].strip()}" for i, h in enumerate(hits, 1))
