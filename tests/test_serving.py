"""The pyfunc serving model: log -> register -> load @champion gives the adapter's own P(Yes)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow_support import build_tiny_adapter, template_store, tracking_params

from reasoningrec import serving, tracking
from reasoningrec.chat import render_chat
from reasoningrec.models import load_adapter
from reasoningrec.records.prompt import ItemText, build_prompt
from reasoningrec.scoring import generate_explanations, score_prompts

HISTORY = [
    {"title": "Fresh Eau De Parfum", "description": "a light floral scent", "liked": True},
    {"title": "Dry Shampoo", "description": "dried the hair", "details": "Brand: Braun", "liked": False},
]
TARGET = {"title": "Moisturising Cream", "description": "a cream with a light scent"}
PROFILE = "The user prefers natural ingredients and gentle scents."


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    return template_store(tmp_path_factory)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return build_tiny_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "adapter")


@pytest.fixture(scope="module")
def direct(adapter_dir):
    """The adapter loaded without MLflow: (model, tokenizer, meta)."""
    return load_adapter(adapter_dir)


@pytest.fixture(scope="module")
def registered(adapter_dir, template_db, tmp_path_factory):
    """The adapter saved as a pyfunc, logged, registered, and loaded back through the registry alias."""
    tmp_path = tmp_path_factory.mktemp("tracking")
    params = tracking_params(tmp_path, template_db)
    model_dir = serving.save_pyfunc_model(
        adapter_dir, tmp_path / "pyfunc", batch_size=2, max_new_tokens=6, extra_config={"domain": "beauty"}
    )
    run_id = tracking.log_run(
        params, dataset="beauty", method="reasoningrec", k_shots=4, seed=0, settings={},
        metrics={"valid_auc": 0.6}, artifacts={"model": model_dir, "adapter": adapter_dir},
    )
    registration = tracking.register_run_model(params, "beauty", run_id)
    assert registration.alias == tracking.CHAMPION
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", params.tracking.tracking_uri)
        loaded = mlflow.pyfunc.load_model(tracking.model_uri(params, "beauty"))
    return params, loaded


def _structured_prompt_text(variant: str = "full", domain: str = "beauty") -> str:
    history = [
        (int(h["liked"]), ItemText(h["title"], h.get("details", ""), h.get("description", ""))) for h in HISTORY
    ]
    return build_prompt(variant, domain, PROFILE, history, ItemText(TARGET["title"], "", TARGET["description"]))


def test_registry_round_trip_gives_the_adapters_own_scores(registered, direct):
    _, loaded = registered
    model, tokenizer, _ = direct
    texts = [_structured_prompt_text(), "Will the user like Toy Story (1995)?", "Liked Heat. Disliked Jumanji."]
    rendered = [render_chat(tokenizer, text) for text in texts]
    expected = score_prompts(model, tokenizer, rendered, batch_size=1)

    out = loaded.predict(pd.DataFrame({"prompt_text": texts}))
    assert list(out.columns) == ["p_yes", "prediction", "explanation"]
    np.testing.assert_allclose(out["p_yes"].to_numpy(), expected, rtol=0, atol=1e-5)
    assert out["prediction"].tolist() == (expected >= 0.5).astype(int).tolist()
    assert out["explanation"].tolist() == ["", "", ""]  # not asked for
    # Pre-rendered prompts (the `prompt` column of records.parquet) score the same.
    again = loaded.predict(pd.DataFrame({"prompt": rendered}))
    np.testing.assert_allclose(again["p_yes"].to_numpy(), expected, atol=1e-5)
    # The adapter is applied: the base model alone scores differently.
    with model.disable_adapter():
        base = score_prompts(model, tokenizer, rendered, batch_size=1)
    assert np.abs(base - expected).max() > 1e-4


def test_structured_records_build_the_training_prompt(registered, direct):
    _, loaded = registered
    model, tokenizer, _ = direct
    out = loaded.predict(pd.DataFrame([{"profile": PROFILE, "history": HISTORY, "target": TARGET}]))
    expected = score_prompts(model, tokenizer, [render_chat(tokenizer, _structured_prompt_text())], 1)
    np.testing.assert_allclose(out["p_yes"].to_numpy(), expected, atol=1e-5)


def test_explanations_on_request(registered, direct):
    _, loaded = registered
    model, tokenizer, _ = direct
    rows = pd.DataFrame({"prompt_text": ["Will the user like Heat?", "Will the user like Jumanji?"]})
    expected = generate_explanations(
        model, tokenizer, [render_chat(tokenizer, t) for t in rows["prompt_text"]], max_new_tokens=6
    )
    out = loaded.predict(rows, params={"explain": True})
    assert out["explanation"].tolist() == [e.reasoning for e in expected]
    assert any(text for text in out["explanation"])  # six tokens of a random model are not all empty
    # A per-row `explain` column asks for some rows only.
    partial = loaded.predict(rows.assign(explain=[False, True]))
    assert partial["explanation"].tolist() == ["", expected[1].reasoning]


def test_signature_is_declared(registered):
    _, loaded = registered
    signature = loaded.metadata.signature
    assert signature.inputs.input_names() == ["profile", "history", "target", "prompt_text", "prompt", "explain"]
    assert signature.outputs.input_names() == ["p_yes", "prediction", "explanation"]
    assert {p.name for p in signature.params} == {"explain", "max_new_tokens", "batch_size"}


def test_champion_loader_helper_matches_mlflow(registered):
    params, loaded = registered
    ours = tracking.load_model(params, "beauty")
    assert ours.metadata.metadata["version"] == 1
    rows = pd.DataFrame({"prompt_text": ["Will the user like Heat?"]})
    np.testing.assert_allclose(ours.predict(rows)["p_yes"], loaded.predict(rows)["p_yes"], atol=1e-6)


def test_bad_request_rows_name_the_row_and_field(registered):
    _, loaded = registered
    with pytest.raises(serving.ServingInputError, match=r"request, row 1, field 'history\[0\]'"):
        loaded.predict(
            pd.DataFrame(
                [
                    {"profile": PROFILE, "history": HISTORY, "target": TARGET},
                    {"profile": PROFILE, "history": [{"title": "", "liked": True}], "target": TARGET},
                ]
            )
        )
    with pytest.raises(serving.ServingInputError, match="row 0, field 'target'"):
        loaded.predict(pd.DataFrame([{"profile": PROFILE}]))


def test_save_refuses_a_folder_that_is_not_an_adapter(tmp_path):
    with pytest.raises(Exception, match="not a trained adapter folder"):
        serving.save_pyfunc_model(tmp_path, tmp_path / "model")
