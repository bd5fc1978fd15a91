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
    (uncached when ``cache_dir`` is None). Models load lazily, on the first generation. A local
    backend with several ``llm.devices`` runs one worker process per device
    (:class:`reasoningrec.llm.multi.MultiDeviceBackend`) under the same name and model id, so its
    replies share the cache with the single-process backend's."""
    backend: ChatBackend
    if llm.backend in ("embedded", "hf"):
        backend = _local_backend(llm)
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


def _local_backend(llm: LLMConfig) -> ChatBackend:
    """The hf / embedded backend of ``llm``: in this process, or over ``llm.devices`` workers."""
    from functools import partial

    from reasoningrec.llm.multi import MultiDeviceBackend, local_backend, resolve_devices

    kwargs = {"dtype": llm.dtype, "batch_size": llm.batch_size, "engine": llm.decode}
    if llm.backend == "hf":
        # "embedded" or an offline-missing SmolLM2 id resolve on first use
        kwargs.update(model=llm.model, model_id=llm.model, quantization=llm.quantization)
    devices = [None] if llm.devices == 1 else resolve_devices(llm.devices, _gpu_count())
    if len(devices) == 1:
        return local_backend(devices[0], kind=llm.backend, **kwargs)
    if llm.backend == "embedded":
        from reasoningrec.llm.embedded import MODEL_ID, embedded_model_dir

        embedded_model_dir()  # converted once here, not by every worker at once
        name, model_id = "embedded", MODEL_ID
    else:
        name, model_id = "hf", llm.model
    return MultiDeviceBackend(
        partial(local_backend, kind=llm.backend, **kwargs),
        devices,
        name=name,
        model_id=model_id,
        batch_size=llm.batch_size,
    )


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
