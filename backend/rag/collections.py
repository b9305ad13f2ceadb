"""RAG collections: upload documents, chunk, embed, index, retrieve with citations (services; session first).

A collection is a row in ``rag_collections`` (name, folder, meta) plus a versioned faiss index in
its folder under ``<data dir>/rag/``. ``meta`` holds the embedder, the chunking settings, the
current index version and the documents with their chunk counts.

NOTE: documents are read, split and embedded *outside* any write transaction (seconds of CPU), so
SQLite's write lock is held only while the new chunks are merged into the current index and the
row is updated; two uploads to one collection then serialise on that lock and neither is lost.
"""

import re
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.tables import RagCollection
from backend.errors import StudioError
from backend.rag.documents import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, read_document, split_text
from backend.rag.index import prune_versions
from backend.settings import get_settings

NAME = re.compile(r"^[A-Za-z0-9][\w .-]{0,99}$")
MAX_K = 20


def _rag_dir() -> Path:
    return get_settings().resolved_data_dir / "rag"


def _get(session: Session, name: str) -> RagCollection:
    row = session.scalar(select(RagCollection).where(RagCollection.name == name))
    if row is None:
        known = session.scalars(select(RagCollection.name).order_by(RagCollection.name)).all()
        raise StudioError(f"No document collection '{name}'" + (f" (there are: {', '.join(known)})." if known
                                                                 else ": upload documents to create one."))
    return row


def _summary(row: RagCollection) -> dict[str, Any]:
    docs = row.meta.get("documents", {})
    return {"id": row.id, "name": row.name, "documents": len(docs), "chunks": sum(d["chunks"] for d in docs.values()),
            "chunk_size": row.meta.get("chunk_size"), "chunk_overlap": row.meta.get("chunk_overlap"),
            "embedder": row.meta.get("embedder"), "created_at": row.created_at.isoformat(timespec="seconds")}


def list_collections(session: Session) -> list[dict[str, Any]]:
    """Every collection with its document and chunk counts."""
    return [_summary(r) for r in session.scalars(select(RagCollection).order_by(RagCollection.name))]


def collection_info(session: Session, name: str) -> dict[str, Any]:
    """One collection with a row per document (name, chunks, characters)."""
    row = _get(session, name)
    docs = [{"document": d, **info} for d, info in sorted(row.meta.get("documents", {}).items())]
    return {**_summary(row), "document_list": docs}


def add_documents(session: Session, collection: str, files: list[tuple[str, bytes]], *,
                  chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP) -> dict[str, Any]:
    """Add (or replace, by file name) documents in a collection, creating the collection if it is new.

    Args:
        session: a write session.
        collection: the collection's name.
        files: ``(file name, content bytes)`` pairs — text, markdown or PDF.
        chunk_size, chunk_overlap: characters; used when the collection is created (an existing
            collection keeps its own settings so all its chunks are comparable).

    Returns:
        The collection summary plus ``added``: ``[{"document", "chunks"}]``.
    """
    from backend.rag.embedder import EMBEDDER_NAME, get_embedder
    from backend.rag.index import Chunk

    if not NAME.match(collection or ""):
        raise StudioError("Name the collection with letters, digits, spaces, '.', '_' or '-' (up to 100).")
    if not files:
        raise StudioError("Choose at least one document to upload.")
    # a document is known by its file name alone: no folders ("../../x.txt" is "x.txt"), at most 200 characters
    files = [(re.split(r"[\\/]", name or "")[-1].strip()[-200:], data) for name, data in files]
    names = [n for n, _ in files]
    if len(set(names)) != len(names):
        raise StudioError("Two uploaded files have the same name: rename one (citations use file names).")
    existing = session.scalar(select(RagCollection).where(RagCollection.name == collection))
    if existing is not None:
        chunk_size, chunk_overlap = existing.meta["chunk_size"], existing.meta["chunk_overlap"]
    session.commit()  # NOTE: end the read transaction before the slow part (see module docstring)

    new_chunks: list[Chunk] = []
    added = []
    for name, data in files:
        pieces = split_text(read_document(name, data), chunk_size, chunk_overlap)
        new_chunks += [Chunk(name, i, text) for i, text in enumerate(pieces)]
        added.append({"document": name, "chunks": len(pieces), "chars": sum(map(len, pieces))})
    embedder = get_embedder()
    vectors = embedder.encode([c.text for c in new_chunks])

    row = session.scalar(select(RagCollection).where(RagCollection.name == collection))  # takes the write lock
    if row is None:
        row = RagCollection(name=collection, path="", meta={
            "embedder": EMBEDDER_NAME, "dim": embedder.dim, "chunk_size": chunk_size, "chunk_overlap": chunk_overlap,
            "version": 0, "documents": {}})
        session.add(row)
        session.flush()
        row.path = str(_rag_dir() / f"{row.id}-{re.sub(r'[^a-z0-9._-]+', '-', collection.lower())}")
    index = _load_index(row)
    for name in names:
        index = index.without_doc(name)
    index.add(new_chunks, vectors)
    version = int(row.meta.get("version", 0)) + 1
    index.save(Path(row.path), version)
    docs = {d: v for d, v in row.meta.get("documents", {}).items() if d not in names}
    docs.update({a["document"]: {"chunks": a["chunks"], "chars": a["chars"]} for a in added})
    row.meta = {**row.meta, "version": version, "documents": docs}
    session.flush()
    prune_versions(Path(row.path), keep_from=version - 1)
    return {**_summary(row), "added": added}


def remove_document(session: Session, collection: str, document: str) -> dict[str, Any]:
    """Drop one document's chunks from a collection."""
    row = _get(session, collection)
    if document not in row.meta.get("documents", {}):
        raise StudioError(f"Collection '{collection}' has no document '{document}'.")
    index = _load_index(row).without_doc(document)
    version = int(row.meta["version"]) + 1
    index.save(Path(row.path), version)
    row.meta = {**row.meta, "version": version,
                "documents": {d: v for d, v in row.meta["documents"].items() if d != document}}
    session.flush()
    prune_versions(Path(row.path), keep_from=version - 1)
    return _summary(row)


def delete_collection(session: Session, name: str) -> None:
    """Delete a collection and its files."""
    row = _get(session, name)
    folder = Path(row.path)
    session.delete(row)
    session.flush()
    if folder.is_dir() and folder.parent == _rag_dir():
        shutil.rmtree(folder, ignore_errors=True)


def retrieve(session: Session, collection: str, query: str, k: int = 3) -> list[dict[str, Any]]:
    """The ``k`` chunks most similar to ``query``, best first.

    Returns:
        ``[{"rank", "score", "doc", "chunk", "text", "citation"}]``; ``citation`` is "doc.md #3"
        (chunk numbers start at 1 for people).
    """
    from backend.rag.embedder import get_embedder

    if not query or not query.strip():
        raise StudioError("Type a question to search the documents with.")
    if not 1 <= k <= MAX_K:
        raise StudioError(f"Retrieve between 1 and {MAX_K} chunks.")
    row = _get(session, collection)
    if not row.meta.get("documents"):
        raise StudioError(f"Collection '{collection}' has no documents yet: upload some first.")
    embedder = get_embedder()
    if row.meta.get("embedder") != embedder.name:
        raise StudioError(f"Collection '{collection}' was embedded with {row.meta.get('embedder')}, but this studio "
                          f"uses {embedder.name}: upload its documents again into a new collection.")
    hits = _load_index(row).search(embedder.encode([query])[0], k)
    return [{**h, "citation": f"{h['doc']} #{h['chunk'] + 1}"} for h in hits]


# Loaded indexes, keyed by folder and version: a saved version never changes, so sharing is safe.
_indexes: OrderedDict[tuple[str, int], Any] = OrderedDict()
_indexes_lock = threading.Lock()


def clear_cache() -> None:
    """Forget the loaded indexes (the next retrieval reads them from disk again)."""
    with _indexes_lock:
        _indexes.clear()


def _load_index(row: RagCollection):
    from backend.rag.index import VectorIndex

    version = int(row.meta.get("version", 0))
    if version == 0:
        return VectorIndex(int(row.meta["dim"]))
    key = (row.path, version)
    with _indexes_lock:
        if key not in _indexes:
            try:
                _indexes[key] = VectorIndex.load(Path(row.path), version)
            except (OSError, ValueError) as exc:
                raise StudioError(f"The files of collection '{row.name}' are missing or damaged ({exc}): delete it "
                                  "and upload its documents again.") from None
            while len(_indexes) > 8:
                _indexes.popitem(last=False)
        _indexes.move_to_end(key)
        return _indexes[key]
