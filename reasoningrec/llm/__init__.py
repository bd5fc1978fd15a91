"""LLM backends (local Hugging Face, OpenAI-compatible HTTP, embedded SmolLM2) and a response cache.

``make_backend(params.llm, cache_dir)`` is the one entry point the pipeline needs; heavy libraries
(torch, transformers, httpx) load only when a backend is built or first used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reasoningrec.llm.base import ChatBackend, Generation, GenerationSettings, LLMBackendError, Message
from reasoningrec.llm.cache import CachedBackend, cache_key

if TYPE_CHECKING:
    from reasoningrec.config import LLMConfig

CACHE_FILE = "llm_cache.sqlite"

__all__ = [
    "CACHE_FILE",
    "CachedBackend",
    "ChatBackend",
    "Generation",
    "GenerationSettings",
    "LLMBackendError",
    "Message",
    "cache_key",
    "make_backend",
]


def make_backend(llm: LLMConfig, cache_dir: Path | None) -> ChatBackend:
    """The backend ``llm`` describes, behind the response cache ``<cache_dir>/llm_cache.sqlite``
    (uncached when ``cache_dir`` is None). Models load lazily, on the first generation."""
    backend: ChatBackend
    if llm.backend == "embedded":
        from reasoningrec.llm.hf import EmbeddedBackend

        backend = EmbeddedBackend(dtype=llm.dtype, batch_size=llm.batch_size, engine=llm.decode)
    elif llm.backend == "hf":
        from reasoningrec.llm.hf import HFBackend

        backend = HFBackend(
            llm.model,  # "embedded" or an offline-missing SmolLM2 id resolve on first use
            model_id=llm.model,
            quantization=llm.quantization,
            dtype=llm.dtype,
            batch_size=llm.batch_size,
            engine=llm.decode,
        )
    elif llm.backend == "openai":
        from reasoningrec.llm.openai_http import OpenAIBackend

        backend = OpenAIBackend(
            llm.model,
            llm.base_url,
            api_key_env=llm.api_key_env,
            max_concurrency=llm.max_concurrency,
            timeout_s=llm.timeout_s,
            max_retries=llm.max_retries,
            backoff_base_s=llm.backoff_base_s,
            backoff_max_s=llm.backoff_max_s,
            retry_after_cap_s=llm.retry_after_cap_s,
        )
    else:  # LLMConfig validates the name; this guards direct construction
        raise ValueError(f"unknown llm.backend {llm.backend!r} (expected embedded, hf or openai)")
    if cache_dir is None:
        return backend
    return CachedBackend(backend, Path(cache_dir) / CACHE_FILE)
