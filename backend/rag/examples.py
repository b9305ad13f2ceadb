"""Few-shot example retrieval: the pool examples most similar to the input, by the same embedder + faiss."""

import hashlib
import threading
from collections import OrderedDict

import numpy as np

_pool_cache: OrderedDict[str, np.ndarray] = OrderedDict()  # pool texts hash → embeddings (immutable arrays)
_lock = threading.Lock()


def _pool_vectors(texts: list[str]) -> np.ndarray:
    from backend.rag.embedder import get_embedder

    key = hashlib.sha256("\x1f".join(texts).encode("utf-8")).hexdigest()
    with _lock:
        if key in _pool_cache:
            _pool_cache.move_to_end(key)
            return _pool_cache[key]
    vectors = get_embedder().encode(texts)
    vectors.setflags(write=False)
    with _lock:
        _pool_cache[key] = vectors
        while len(_pool_cache) > 8:
            _pool_cache.popitem(last=False)
    return vectors


def most_similar(query: str, candidates: list[str], k: int) -> list[tuple[int, float]]:
    """Indices of the ``k`` candidates nearest to ``query`` (cosine similarity), most similar first."""
    import faiss

    from backend.rag.embedder import get_embedder

    if k <= 0 or not candidates:
        return []
    pool = _pool_vectors(candidates)
    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(pool)
    scores, ids = index.search(get_embedder().encode([query]), min(k, len(candidates)))
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
