"""Retrieval: chunking, the real MiniLM embedder + faiss, persisted collections, citations, RAG prompts."""

import itertools

import pytest

from backend.db.engine import session_scope
from backend.errors import StudioError
from backend.rag import collections as rag
from backend.rag.documents import read_document, split_text

DOCS = {
    "penguins.md": "# Penguins\n\nEmperor penguins breed in Antarctica during the winter. The male keeps the egg "
                   "warm on his feet for two months while the female hunts fish and krill at sea.",
    "refunds.txt": "Refund policy. Customers may return an item within 30 days of delivery. The refund is paid "
                   "to the original card within five business days after the warehouse receives the parcel.",
    "volcano.txt": "Mount Etna in Sicily is one of the most active volcanoes in the world; its eruptions send lava "
                   "flows down the slopes and ash clouds over Catania airport.",
}


def make_pdf(text: str) -> bytes:
    """A one-page PDF with a text layer (no PDF library needed to write it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
             b"/Resources << /Font << /F1 5 0 R >> >> >>"),
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)


def test_split_text_respects_size_and_overlap():
    text = " ".join(f"Sentence number {i} says something about topic {i % 7}." for i in range(120))
    chunks = split_text(text, chunk_size=200, chunk_overlap=40)
    assert len(chunks) > 10 and all(len(c) <= 200 for c in chunks)
    assert all(a[-20:].split()[-1] in b for a, b in itertools.pairwise(chunks))  # neighbours overlap
    with pytest.raises(StudioError, match="overlap"):
        split_text(text, chunk_size=100, chunk_overlap=100)


def test_read_document_text_markdown_pdf_and_bad_files():
    assert read_document("a.md", b"# T\nbody") == "# T\nbody"
    assert read_document("p.pdf", make_pdf("Penguins live in Antarctica.")) == "Penguins live in Antarctica."
    for name, data, message in [("a.txt", b"\xff\xfe\xfa", "UTF-8"), ("a.docx", b"x", "PDF"),
                                ("a.pdf", b"not a pdf", "PDF"), ("e.txt", b"  \n", "empty")]:
        with pytest.raises(StudioError, match=message):
            read_document(name, data)


def test_embedder_nearest_is_the_matching_text():
    from backend.rag.embedder import get_embedder
    from backend.rag.examples import most_similar

    emb = get_embedder()
    vecs = emb.encode(["a cat sat on the mat", "stock prices fell sharply"])
    assert vecs.shape == (2, 384) and abs(float((vecs[0] ** 2).sum()) - 1) < 1e-5
    assert get_embedder() is emb  # loaded once per process
    ranked = most_similar("my kitten sleeps on a rug", ["shares dropped on Wall Street", "a cat on the mat"], 2)
    assert [i for i, _ in ranked] == [1, 0] and ranked[0][1] > ranked[1][1]


@pytest.fixture
def collection(studio_env):
    files = [(n, t.encode()) for n, t in DOCS.items()] + [("facts.pdf", make_pdf("The Eiffel Tower is in Paris."))]
    with session_scope(write=True) as s:
        info = rag.add_documents(s, "course notes", files, chunk_size=300, chunk_overlap=30)
    return info


def test_collection_retrieves_the_obvious_chunk_with_citations(collection):
    assert collection["documents"] == 4 and collection["chunks"] >= 4
    queries = {"How long does a refund take to reach my card?": "refunds.txt",
               "Which bird keeps its egg on its feet in the cold?": "penguins.md",
               "Is the Sicilian volcano erupting lava?": "volcano.txt", "Where is the Eiffel Tower?": "facts.pdf"}
    with session_scope() as s:
        for query, doc in queries.items():
            hits = rag.retrieve(s, "course notes", query, k=3)
            assert hits[0]["doc"] == doc, (query, hits)
            assert [h["rank"] for h in hits] == [1, 2, 3] and hits[0]["score"] >= hits[1]["score"]
            assert hits[0]["citation"] == f"{doc} #{hits[0]['chunk'] + 1}"
        listed = rag.list_collections(s)
    assert [c["name"] for c in listed] == ["course notes"] and listed[0]["embedder"] == "all-MiniLM-L6-v2"


def test_collection_persists_replaces_and_deletes(collection, studio_env):
    rag.clear_cache()  # force a reload from disk
    with session_scope(write=True) as s:
        assert rag.retrieve(s, "course notes", "refund to my card", 1)[0]["doc"] == "refunds.txt"
        rag.add_documents(s, "course notes", [("refunds.txt", b"Refunds are no longer offered; store credit only.")])
        hit = rag.retrieve(s, "course notes", "refund policy", 1)[0]
        assert hit["doc"] == "refunds.txt" and "store credit" in hit["text"]
        info = rag.collection_info(s, "course notes")
        assert {d["document"]: d["chunks"] for d in info["document_list"]}["refunds.txt"] == 1
        rag.remove_document(s, "course notes", "facts.pdf")
        assert rag.collection_info(s, "course notes")["documents"] == 3
    folder = next((studio_env / "rag").iterdir())
    assert sorted(p.name for p in folder.iterdir())[-2:] == ["v3.faiss", "v3.jsonl"]
    assert not (folder / "v1.faiss").exists()  # old versions pruned
    with session_scope(write=True) as s:
        rag.delete_collection(s, "course notes")
    assert not folder.exists()


def test_collection_bad_input(studio_env):
    with session_scope(write=True) as s:
        with pytest.raises(StudioError, match="No document collection 'nope'"):
            rag.retrieve(s, "nope", "q")
        with pytest.raises(StudioError, match="Name the collection"):
            rag.add_documents(s, "../evil", [("a.txt", b"x")])
        with pytest.raises(StudioError, match="at least one"):
            rag.add_documents(s, "ok", [])


def test_rag_prompt_fills_context_and_returns_citations(collection):
    from services.prompt_building import PromptSpec, build_prompt

    with session_scope() as s:
        built = build_prompt(s, PromptSpec(rag_collection="course notes", rag_k=2), "When is my refund paid?")
        with pytest.raises(StudioError, match="Type a question"):
            build_prompt(s, PromptSpec(rag_collection="course notes"), "  ")
        with pytest.raises(StudioError, match="no \\{context\\} slot"):
            build_prompt(s, PromptSpec(template="sentiment", rag_collection="course notes"), "great")
    assert built.template == "rag-qa" and built.label == "rag-qa · RAG course notes (k=2)"
    assert built.citations[0]["doc"] == "refunds.txt" and len(built.citations) == 2
    assert "[1] (refunds.txt, chunk 0)\nRefund policy." in built.text
    assert built.text.endswith("Question: When is my refund paid?\nAssistant:")
