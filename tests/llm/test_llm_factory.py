"""make_backend: the configured backend, behind the cache unless cache_dir is None."""

from __future__ import annotations

import subprocess
import sys

from reasoningrec.config import LLMConfig, parse_params
from reasoningrec.llm import CACHE_FILE, CachedBackend, GenerationSettings, make_backend
from reasoningrec.llm.embedded import MODEL_ID
from reasoningrec.llm.hf import EmbeddedBackend, HFBackend
from reasoningrec.llm.openai_http import OpenAIBackend


def test_each_backend_from_settings(tmp_path):
    emb = make_backend(LLMConfig(backend="embedded", batch_size=4), None)
    assert isinstance(emb, EmbeddedBackend) and (emb.name, emb.model_id, emb.batch_size) == (
        "embedded",
        MODEL_ID,
        4,
    )

    hf = make_backend(LLMConfig(backend="hf", model="org/model", quantization="nf4"), None)
    assert isinstance(hf, HFBackend) and (hf.name, hf.model_id, hf.quantization) == ("hf", "org/model", "nf4")

    api = make_backend(
        LLMConfig(backend="openai", model="m", base_url=["http://a/v1", "http://b/v1"], max_concurrency=3),
        None,
    )
    assert isinstance(api, OpenAIBackend) and api.base_urls == ["http://a/v1", "http://b/v1"]
    assert api.max_concurrency == 3
    tuned = make_backend(LLMConfig(backend="openai", backoff_base_s=0.5, backoff_max_s=7, retry_after_cap_s=42), None)
    assert (tuned.backoff_base_s, tuned.backoff_max_s, tuned.retry_after_cap_s) == (0.5, 7, 42)
    assert make_backend(LLMConfig(backend="openai"), None).retry_after_cap_s == 300  # the documented default

    cached = make_backend(LLMConfig(backend="hf", model="org/model"), tmp_path / "cache")
    assert isinstance(cached, CachedBackend) and (cached.name, cached.model_id) == ("hf", "org/model")
    assert (tmp_path / "cache" / CACHE_FILE).is_file()


def test_params_accept_comma_separated_urls():
    params = parse_params({"llm": {"backend": "openai", "base_url": "http://a:8000/v1,http://b:8000/v1"}})
    backend = make_backend(params.llm, None)
    assert backend.base_urls == ["http://a:8000/v1", "http://b:8000/v1"]


def test_cached_factory_backend_round_trip_with_tiny_model(tiny_model_dir, tmp_path):
    llm = LLMConfig(backend="hf", model=str(tiny_model_dir), batch_size=2)
    batch = [[{"role": "user", "content": f"Yes or No? {i}"}] for i in range(3)]
    settings = GenerationSettings(temperature=0, max_new_tokens=4)
    first = make_backend(llm, tmp_path / "cache").generate(batch, settings)
    second = make_backend(llm, tmp_path / "cache")
    out = second.generate(batch, settings)
    assert second.backend._loaded is None  # all hits: the model was never even loaded
    assert [g.text for g in out] == [g.text for g in first] and all(g.cached for g in out)


def test_importing_the_package_stays_light():
    code = (
        "import sys, reasoningrec.llm; print(sorted(m for m in ('torch', 'transformers', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
