"""Documents: upload text, markdown or PDF into collections (chunked, embedded, indexed) for retrieval in prompts."""

import pandas as pd
import streamlit as st

from app.common import user_errors
from app.components.safe_text import escape_markdown
from backend.db.engine import session_scope
from backend.rag import collections as rag
from backend.rag.documents import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, TEXT_SUFFIXES

st.title(":material/description: Documents")
st.caption("A collection is a set of documents split into chunks, embedded with MiniLM and indexed with faiss. "
           "Pick it under *Template, examples and documents* in the Playground: the top-k chunks go into the "
           "prompt and the answer lists them as sources.")

if flash := st.session_state.pop("doc-flash", None):  # the result of a removal, across the rerun that shows it
    st.success(flash)
with session_scope() as s:
    existing = rag.list_collections(s)
names = [c["name"] for c in existing]

with st.form("doc-upload", clear_on_submit=True):
    st.markdown("**Upload documents**")
    c1, c2, c3 = st.columns([2, 1, 1])
    name = c1.text_input("Collection", names[0] if names else "docs", key="doc-collection",
                         help="An existing collection gets the documents (same file name = replaced); a new name "
                              "creates one.")
    size = c2.number_input("Chunk size (characters)", 50, 8000, DEFAULT_CHUNK_SIZE, 50, key="doc-size",
                           help="Used when the collection is created; an existing one keeps its own.")
    overlap = c3.number_input("Overlap (characters)", 0, 4000, DEFAULT_CHUNK_OVERLAP, 10, key="doc-overlap",
                              help="Neighbouring chunks share this much text, so a sentence cut in two is in both.")
    files = st.file_uploader("Files (text, markdown, PDF)", accept_multiple_files=True, key="doc-files",
                             type=sorted(s.lstrip(".") for s in TEXT_SUFFIXES | {".pdf"}))
    if st.form_submit_button("Upload and index", type="primary", icon=":material/upload:"):
        with user_errors(), st.spinner("Splitting and embedding…"), session_scope(write=True) as s:
            done = rag.add_documents(s, name.strip(), [(f.name, f.getvalue()) for f in files or []],
                                     chunk_size=int(size), chunk_overlap=int(overlap))
            added = ", ".join(f"{a['document']} ({a['chunks']} chunks)" for a in done["added"])
            st.success(f"Collection **{done['name']}**: indexed {added}. It holds {done['chunks']} chunks now.")
        with session_scope() as s:
            existing = rag.list_collections(s)

if not existing:
    st.info("No collection yet: upload a document above.")
    st.stop()

st.subheader("Collections")
st.dataframe(pd.DataFrame(existing), hide_index=True, width="stretch",
             column_order=["name", "documents", "chunks", "chunk_size", "chunk_overlap", "embedder", "created_at"])
chosen = st.selectbox("Collection", [c["name"] for c in existing], key="doc-pick")
with session_scope() as s:
    info = rag.collection_info(s, chosen)
if info["document_list"]:
    st.dataframe(pd.DataFrame(info["document_list"]), hide_index=True, width="stretch")

search, manage = st.columns([2, 1], gap="large")
with search:
    st.markdown("**Try retrieval**")
    query = st.text_input("Question", key="doc-query", placeholder="What the prompt would ask…")
    k = st.number_input("Chunks (k)", 1, rag.MAX_K, 3, key="doc-k")
    if query.strip():
        with user_errors(), st.spinner("Searching…"), session_scope() as s:
            for hit in rag.retrieve(s, chosen, query, int(k)):
                with st.container(border=True):
                    st.caption(f"[{hit['rank']}] {escape_markdown(hit['citation'])} · similarity {hit['score']:.2f}")
                    st.text(hit["text"][:1200])
with manage:
    st.markdown("**Manage**")
    doc = st.selectbox("Document", [d["document"] for d in info["document_list"]], key="doc-remove-pick")
    if st.button("Remove document", key="doc-remove", disabled=doc is None, icon=":material/delete:"):
        with user_errors(), session_scope(write=True) as s:
            rag.remove_document(s, chosen, doc)
            st.session_state["doc-flash"] = f"Removed {doc} from {chosen}."
    sure = st.checkbox(f"Yes, delete collection '{chosen}' and its index", key="doc-sure")
    if st.button("Delete collection", key="doc-delete", disabled=not sure, icon=":material/delete_forever:"):
        with user_errors(), session_scope(write=True) as s:
            rag.delete_collection(s, chosen)
            st.session_state["doc-flash"] = f"Deleted collection {chosen}."
    if "doc-flash" in st.session_state:  # committed: redraw the tables (never rerun inside a session_scope)
        st.rerun()
