"""Settings of text generation: the LLM backend and each synthesis stage's decoding."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reasoningrec.config.base import Section


class LLMConfig(Section):
    backend: Literal["embedded", "hf", "openai"] = "embedded"
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    quantization: Literal["none", "nf4", "int8"] = "none"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    batch_size: int = Field(8, ge=1)
    # Local decoding: generate (model.generate) | static (static KV cache, CUDA-graphed step) |
    # auto (static on CUDA without quantization).
    decode: Literal["auto", "generate", "static"] = "auto"
    # One OpenAI-compatible server, or several (a list or comma-separated) shared round-robin.
    base_url: str | list[str] = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(5, ge=0)
    # Exponential backoff between retries: first delay and its ceiling (each with jitter).
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    # The longest Retry-After the OpenAI backend waits; a server asking for more fails the request
    # at once (waiting the cap would only be told the same again), keeping every finished reply.
    retry_after_cap_s: float = Field(300.0, ge=0)


class GenerationConfig(Section):
    temperature: float = Field(0.01, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    words: int | None = None
    seed: int = 0
    # Only the first N items/users (null = all). For a dataset with imported texts, describe.limit
    # items are also described by llm.model into <work_dir>/<dataset>/llm/, beside the imported ones.
    limit: int | None = Field(None, ge=1)
