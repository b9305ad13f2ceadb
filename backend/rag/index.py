"""A faiss inner-product index over unit vectors plus the chunk each vector came from, saved to a folder.

Layout of a collection folder, per saved version ``v``: ``v{v}.faiss`` (faiss ``IndexFlatIP``:
exact search, inner product of unit vectors = cosine similarity) and ``v{v}.jsonl`` (one
``{"doc", "chunk", "text"}`` per vector, same order). A save writes a new version and never touches
the files a reader may be loading; the database row says which version is current.
"""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Chunk:
    doc: str  # document name, shown in citations
    chunk: int  # position of the chunk in its document, from 0
    text: str


class VectorIndex:
    """Chunks and their embeddings; exact top-k search by cosine similarity."""

    def __init__(self, dim: int):
        import faiss

        self.dim = dim
        self.index = faiss.IndexFlatIP(dim)
        self.chunks: list[Chunk] = []

    def __len__(self) -> int:
        return len(self.chunks)

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(chunks), self.dim):
            raise ValueError(f"expected {len(chunks)} vectors of size {self.dim}, got {vectors.shape}")
        self.index.add(vectors)
        self.chunks.extend(chunks)

    def vectors(self) -> np.ndarray:
        return self.index.reconstruct_n(0, self.index.ntotal) if len(self) else np.zeros((0, self.dim), np.float32)

    def without_doc(self, doc: str) -> "VectorIndex":
        """A copy without one document's chunks (to replace a re-uploaded document)."""
        keep = [i for i, c in enumerate(self.chunks) if c.doc != doc]
        fresh = VectorIndex(self.dim)
        if keep:
            fresh.add([self.chunks[i] for i in keep], self.vectors()[keep])
        return fresh

    def search(self, query: np.ndarray, k: int) -> list[dict[str, Any]]:
        """The ``k`` nearest chunks to one unit query vector, best first, with ``rank`` and ``score``."""
        if not len(self):
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        scores, ids = self.index.search(q, min(k, len(self)))
        return [{"rank": r + 1, "score": round(float(s), 4), **asdict(self.chunks[i])}
                for r, (s, i) in enumerate(zip(scores[0], ids[0], strict=True)) if i >= 0]

    def save(self, folder: Path, version: int) -> None:
        """Write version ``version`` (temporary names, then renamed: a crash leaves no half file)."""
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        index_path, chunks_path = _paths(folder, version)
        faiss.write_index(self.index, str(index_path) + ".tmp")
        Path(str(chunks_path) + ".tmp").write_text(
            "".join(json.dumps(asdict(c), ensure_ascii=False) + "\n" for c in self.chunks), encoding="utf-8")
        os.replace(str(chunks_path) + ".tmp", chunks_path)
        os.replace(str(index_path) + ".tmp", index_path)

    @classmethod
    def load(cls, folder: Path, version: int) -> "VectorIndex":
        import faiss

        index_path, chunks_path = _paths(folder, version)
        index = faiss.read_index(str(index_path))
        lines = chunks_path.read_text(encoding="utf-8").splitlines()
        chunks = [Chunk(**json.loads(line)) for line in lines if line.strip()]
        if len(chunks) != index.ntotal:
            raise ValueError(f"{folder}: {index.ntotal} vectors but {len(chunks)} chunks")
        out = cls(index.d)
        out.index, out.chunks = index, chunks
        return out


def _paths(folder: Path, version: int) -> tuple[Path, Path]:
    return folder / f"v{version}.faiss", folder / f"v{version}.jsonl"


def prune_versions(folder: Path, keep_from: int) -> None:
    """Delete saved versions older than ``keep_from`` (keep the previous one for readers still loading it)."""
    for path in list(folder.glob("v*.faiss")) + list(folder.glob("v*.jsonl")):
        stem = path.stem.removeprefix("v")
        if stem.isdigit() and int(stem) < keep_from:
            path.unlink(missing_ok=True)
