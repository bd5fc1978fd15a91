"""Helpers for tests that use MLflow: a private tracking store per test, migrated once per session.

Creating a fresh SQLite store runs MLflow's schema migrations (~3 s); the session builds one and
every test gets its own copy (``sqlite:///{tmp_path}/mlflow.db``), so tests never share runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from reasoningrec.config import Params, parse_params

_TEMPLATE: Path | None = None


def template_store(tmp_path_factory) -> Path:
    """The session's migrated template store (built on first use, shared by every test module)."""
    global _TEMPLATE
    if _TEMPLATE is None or not _TEMPLATE.is_file():
        _TEMPLATE = migrated_store(tmp_path_factory.mktemp("mlflow-template"))
    return _TEMPLATE


def migrated_store(folder: Path) -> Path:
    """An empty, fully migrated MLflow SQLite store at ``folder/mlflow.db``."""
    from mlflow import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()
    client.search_registered_models()
    return db


def tracking_params(tmp_path: Path, template_db: Path, **sections) -> Params:
    """Params whose tracking store and artifacts live in ``tmp_path`` (a copy of the template store)."""
    db = tmp_path / "mlflow.db"
    shutil.copyfile(template_db, db)
    raw = {
        "paths": {"work_dir": str(tmp_path / "work")},
        "tracking": {
            "tracking_uri": f"sqlite:///{db}",
            "artifact_location": str(tmp_path / "mlartifacts"),
            "experiment": "reasoningrec-test",
            "model_prefix": "reasoningrec",
        },
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_params(raw)


def build_tiny_adapter(base_dir: Path, out_dir: Path, *, variant: str = "full", seed: int = 0) -> Path:
    """A LoRA adapter on the tiny test model, laid out as ``training.train_adapter`` saves it.

    LoRA B starts at zero (an adapter that changes nothing); it is randomised here so that a test
    comparing scores through different loaders would notice an adapter that was not applied.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasoningrec.answer import answer_token_ids
    from reasoningrec.io import write_json
    from reasoningrec.methods import METHODS

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.5)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    method = next(m.name for m in METHODS.values() if m.fine_tuned and m.variant == variant)
    write_json(
        out_dir / "reasoningrec.json",
        {
            "dataset": "beauty",
            "method": method,
            "variant": variant,
            "k_shots": 4,
            "seed": seed,
            "base_model": str(base_dir),
            "resolved_base_model": str(base_dir),
            "precision": "fp32",
            "answer_token_ids": list(answer_token_ids(tokenizer)),
            "max_length": 512,
            "best_epoch": 1,
            "valid_auc": 0.5,
        },
    )
    return out_dir
