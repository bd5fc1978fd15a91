"""End to end: a tiny hand-built dataset folder -> run_experiment -> files, MLflow run, registry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow_support import template_store, tracking_params

from reasoningrec import evaluation, experiment, models, serving, serving_requests, tracking
from reasoningrec.errors import ConfigError
from reasoningrec.io import read_json, write_parquet
from reasoningrec.predictions import COLUMNS
from reasoningrec.records.stage import read_records
from reasoningrec.training.train import TrainResult

N_USERS = 12
TITLES = [
    "Rose Hand Cream",
    "Citrus Shampoo",
    "Lavender Soap",
    "Vanilla Body Mist",
    "Argan Hair Oil",
    "Mint Lip Balm",
    "Cedar Beard Wash",
    "Aloe Face Gel",
    "Coconut Conditioner",
    "Jasmine Perfume",
]


def _dataset_folder(folder: Path) -> None:
    """Samples/items/descriptions/profiles/reasoning for 12 users, labels mixed in every split."""
    items = pd.DataFrame({"item_id": [f"i{n}" for n in range(len(TITLES))], "title": TITLES})
    descriptions = pd.DataFrame(
        {
            "item_id": items["item_id"],
            "description": [f"A {t.lower()} with a gentle scent." for t in TITLES],
            "source": "llm",
            "model": "test",
        }
    )
    samples, profiles, reasoning = [], [], []
    for u in range(N_USERS):
        user = f"u{u}"
        profiles.append({"user_id": user, "profile": f"User {u} likes gentle scents.", "source": "llm", "model": "t"})
        for s, split in enumerate(("train", "valid", "test")):
            label = (u + s) % 2
            history = [f"i{(u + s + j) % len(TITLES)}" for j in range(3)]
            samples.append(
                {
                    "user_id": user,
                    "split": split,
                    "target_item": f"i{(u + s + 5) % len(TITLES)}",
                    "target_rating": 5.0 if label else 1.0,
                    "target_timestamp": 1_600_000_000 + 10 * u + s,
                    "label": np.int8(label),
                    "history_items": history,
                    "history_labels": [1, 0, 1],
                    "profile_items": [],
                    "profile_labels": [],
                }
            )
            reasoning.append(
                {
                    "user_id": user,
                    "split": split,
                    "label": np.int8(label),
                    "source": "llm",
                    "model": "t",
                    "reasoning": f"Prediction: {'Yes' if label else 'No'}\nThe user {'enjoys' if label else 'avoids'} "
                    "products with gentle scents like this one.",
                }
            )
    write_parquet(folder / "samples.parquet", pd.DataFrame(samples))
    write_parquet(folder / "items.parquet", items)
    write_parquet(folder / "descriptions.parquet", descriptions)
    write_parquet(folder / "profiles.parquet", pd.DataFrame(profiles))
    write_parquet(folder / "reasoning.parquet", pd.DataFrame(reasoning))


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    """Params for the tiny dataset (tiny model as base, 1 epoch) with its records built."""
    from reasoningrec.records.stage import run_records

    tmp_path = tmp_path_factory.mktemp("experiment")
    template = template_store(tmp_path_factory)
    params = tracking_params(
        tmp_path,
        template,
        datasets={"tiny": {"source": "table", "path": "unused", "domain": "beauty"}},
        records={"k_shots": [4], "valid_size": 6, "max_length": 512, "variants": ["full", "titles"]},
        train={"base_model": str(tiny_model_dir), "epochs": 1, "batch_size": 4, "precision": "fp32", "patience": 1},
        llm={"batch_size": 4},
        evaluate={"explain_limit": 3, "explain_max_new_tokens": 8},
        # Ten items: features are words of one to five items' texts (the default min_df of 3 keeps none).
        explanations={"vocabulary": {"min_df": 1, "max_df": 0.5}},
    )
    from reasoningrec.explanations.features import run_vocabulary

    folder = params.work_dir("tiny")
    _dataset_folder(folder)
    run_vocabulary(params, "tiny")
    run_records(params, "tiny")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", params.tracking.tracking_uri)
        yield params


def test_fine_tuned_experiment_logs_registers_and_writes_files(setup, tmp_path):
    params = setup
    summary = experiment.run_experiment(params, "tiny", "reasoningrec", 4, 0)
    out = params.work_dir("tiny") / "runs" / "reasoningrec-k4-s0"
    assert Path(summary.run_dir) == out
    assert read_json(out / "metrics.json")["run_id"] == summary.run_id

    predictions = pd.read_parquet(out / "predictions.parquet")
    assert tuple(predictions.columns) == COLUMNS
    assert predictions.groupby("split").size().to_dict() == {"test": N_USERS, "valid": 6}
    assert predictions["p_yes"].between(0, 1).all()
    explained = predictions[predictions["explanation"].notna()]
    assert len(explained) == 3 and set(explained["split"]) == {"test"}
    assert explained["reference"].str.startswith("The user").all()  # "Prediction: ..." stripped
    # Consistent by construction: every explanation states the label its score gives.
    assert explained["stated_label"].tolist() == (explained["p_yes"] >= 0.5).astype(int).tolist()
    assert {"test_roc.png", "test_calibration.csv"} <= {p.name for p in (out / "plots").iterdir()}
    assert (out / "adapter" / "reasoningrec.json").is_file()
    # The validation scores are the best epoch's, kept by the training, and equal to a fresh scoring.
    trained = TrainResult.read(out / "train.json")
    assert predictions.loc[predictions["split"] == "valid", "p_yes"].tolist() == trained.valid_scores
    model, tokenizer, _ = models.load_adapter(out / "adapter")
    valid = read_records(params.work_dir("tiny") / "records.parquet", "full").query("split == 'valid'")
    fresh = experiment._score(params, model, tokenizer, valid.reset_index(drop=True), "score valid")
    assert fresh.tolist() == trained.valid_scores

    metrics = summary.metrics
    for name in (
        "valid_auc",
        "test_auc",
        "test_accuracy",
        "test_log_loss",
        "test_ece",
        "test_bertscore_f1",
        "parse_failure_rate",
    ):
        assert metrics[name] is not None, name
    assert 0 <= metrics["test_auc"] <= 1
    assert metrics["parse_failure_rate"] == 0 and metrics["stated_label_agreement"] == 1
    assert metrics["bertscore_pairs"] == 3
    # Explanation quality beyond BERTScore, and the same metrics on the ground truth of those records.
    for name in (
        "expl_grounding_defined",
        "expl_personalisation",
        "expl_fmr",
        "expl_usr",
        "expl_words",
        "reference_expl_personalisation",
        "reference_expl_fmr",
    ):
        assert metrics[name] is not None, name
    evidence = pd.read_parquet(out / "explanations.parquet")
    assert len(evidence) == 3 and {"cited_history_items", "invented_items", "history_titles"} <= set(evidence.columns)

    client = tracking.get_client(params)
    run = client.get_run(summary.run_id)
    assert {k: run.data.tags[k] for k in ("dataset", "method", "k_shots", "seed")} == {
        "dataset": "tiny",
        "method": "reasoningrec",
        "k_shots": "4",
        "seed": "0",
    }
    assert run.data.params["bertscore_model"] == "all-MiniLM-L6-v2 (embedded)"
    assert run.data.params["train.epochs"] == "1"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch_valid_auc")] == [1]
    assert np.isclose(run.data.metrics["test_auc"], metrics["test_auc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"plots", "predictions", "explanations"}  # the adapter is in the LoggedModel
    logged = client.get_logged_model(tracking.logged_model_id(client, run.info.run_id))
    assert logged.source_run_id == run.info.run_id
    assert {m.key: m.value for m in logged.metrics}["valid_auc"] == pytest.approx(metrics["valid_auc"])
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location, dst_path=str(tmp_path)))
    example = json.loads((folder / "serving_input_example.json").read_text())["dataframe_split"]
    # The input example is the run's first test row as a request, built from the dataset's files.
    first = predictions[predictions["split"] == "test"].iloc[0]
    request = serving_requests.load_request(params, "tiny", first["user_id"], first["target_item"])
    assert example["columns"] == ["profile", "history", "target"]
    assert example["data"][0][2] == request["target"] and example["data"][0][0] == request["profile"]

    assert summary.registration["version"] == 1 and summary.registration["alias"] == "champion"
    champion = tracking.load_model(params, "tiny")
    scored = champion.predict(pd.DataFrame({"prompt_text": [_test_prompt(params)]}))
    test_rows = predictions[predictions["split"] == "test"].reset_index(drop=True)
    assert np.isclose(scored["p_yes"].iloc[0], test_rows["p_yes"].iloc[0], atol=1e-5)


def test_valid_scores_are_reused_only_when_a_fresh_scoring_gives_the_same_numbers(tmp_path):
    kept = TrainResult(adapter_dir=tmp_path, best_epoch=1, best_valid_auc=0.5, valid_scores=[0.2, 0.7])
    assert experiment.reusable_valid_scores(kept, "fp32", 8, 2)
    assert not experiment.reusable_valid_scores(kept, "bf16", 8, 2)  # other weights' precision
    bf16 = kept.model_copy(update={"precision": "bf16"})
    assert not experiment.reusable_valid_scores(bf16, "bf16", 8, 2)  # bf16 scores are not reproduced exactly
    assert not experiment.reusable_valid_scores(kept, "fp32", 4, 2)  # other batches
    assert not experiment.reusable_valid_scores(kept, "fp32", 8, 3)  # other records
    assert not experiment.reusable_valid_scores(kept.model_copy(update={"processes": 2}), "fp32", 8, 2)  # shards
    assert not experiment.reusable_valid_scores(kept.model_copy(update={"valid_scores": None}), "fp32", 8, 2)


def test_zero_shot_experiment_is_logged_but_not_registered(setup):
    params = setup
    command = "python -m benchmarks.quality_run --set 'train.learning_rate=3e-4'"
    summary = experiment.run_experiment(params, "tiny", "zeroshot-vanilla", 64, 0, command=command)
    assert summary.k_shots == 0 and summary.registration is None
    assert "test_bertscore_f1" not in summary.metrics  # the titles prompt asks for no reasoning
    run = tracking.get_client(params).get_run(summary.run_id)
    assert run.data.tags["k_shots"] == "0" and run.data.tags["method"] == "zeroshot-vanilla"
    assert run.data.tags["command"] == command  # the report's provenance shows what really ran
    predictions = pd.read_parquet(Path(summary.run_dir) / "predictions.parquet")
    assert predictions["explanation"].isna().all()


def _with(params, section: str, **values):
    from reasoningrec.config import parse_params

    raw = params.model_dump(mode="json", by_alias=True)
    raw[section] = {**raw[section], **values}
    return parse_params(raw)


def test_a_run_made_with_other_settings_is_moved_aside_and_redone(setup):
    params = setup
    first = experiment.run_experiment(params, "tiny", "zeroshot-vanilla", 0, 1)
    out = Path(first.run_dir)
    assert read_json(out / "fingerprint.json")["fingerprint"] == first.fingerprint

    def fingerprint(p, method="zeroshot-vanilla", k=0):
        return experiment.run_fingerprint(p, "tiny", method, k)[0]

    # Speed settings, the BERTScore backbone, the other K sizes and training settings of a
    # zero-shot method do not change what the run computes ...
    assert fingerprint(params) == first.fingerprint
    for section, values in [
        ("llm", {"batch_size": 2}),
        ("evaluate", {"bertscore_model": "deferred"}),
        ("records", {"k_shots": [4, 8]}),
        ("train", {"learning_rate": 1.0}),
    ]:
        assert fingerprint(_with(params, section, **values)) == first.fingerprint, section
    # ... these do: training settings of a fine-tuned one, evaluation settings, the K-shot set.
    tuned = fingerprint(params, "reasoningrec", 4)
    assert fingerprint(_with(params, "train", learning_rate=1.0), "reasoningrec", 4) != tuned
    changed = _with(params, "evaluate", explain_limit=2)
    assert fingerprint(changed) != first.fingerprint

    second = experiment.run_experiment(changed, "tiny", "zeroshot-vanilla", 0, 1)
    assert second.fingerprint == fingerprint(changed) and Path(second.run_dir) == out
    parked = out.parent / ".superseded" / f"{out.name}-{first.fingerprint}"
    assert read_json(parked / "metrics.json")["fingerprint"] == first.fingerprint  # kept, not lost
    assert (parked / "predictions.parquet").is_file()
    assert read_json(out / "metrics.json")["fingerprint"] == second.fingerprint


def test_unknown_method_is_a_config_error(setup):
    with pytest.raises(ConfigError, match="'sasrec' is a baseline"):
        experiment.run_experiment(setup, "tiny", "sasrec", 4, 0)


def test_explain_subset_puts_referenced_rows_first():
    test = pd.DataFrame({"reference": [None, "Prediction: No", "Prediction: Yes\nreason", "why"]})
    assert evaluation.explain_subset(test, 2).index.tolist() == [2, 3]  # referenced rows first
    assert evaluation.explain_subset(test, None).index.tolist() == [2, 3, 0, 1]


def _test_prompt(params) -> str:
    records = pd.read_parquet(params.work_dir("tiny") / "records.parquet")
    test = records[(records["variant"] == "full") & (records["split"] == "test")]
    return test["prompt_text"].iloc[0]


def test_build_request_uses_the_test_split_history_and_profile(setup):
    from reasoningrec.serving_requests import load_request

    request = load_request(setup, "tiny", "u1", "i0")
    # u1's test sample (s=2): history items i3, i4, i5 with labels 1, 0, 1.
    assert [h["title"] for h in request["history"]] == [TITLES[3], TITLES[4], TITLES[5]]
    assert [h["liked"] for h in request["history"]] == [True, False, True]
    assert request["history"][0]["description"] == f"A {TITLES[3].lower()} with a gentle scent."
    assert request["profile"] == "User 1 likes gentle scents."
    assert request["target"]["title"] == TITLES[0]
    with pytest.raises(Exception, match=r"items.parquet, field 'item_id': item 'nope' not found"):
        load_request(setup, "tiny", "u1", "nope")
    with pytest.raises(Exception, match="user 'ghost' has no 'test' sample"):
        load_request(setup, "tiny", "ghost", "i0")


HAND_WRITTEN = (
    "The user liked Argan Hair Oil, so this rose cream suits them better than lavender; "
    'unlike "Golden Oud Night Perfume".'
)


def test_served_evidence_of_a_hand_written_explanation(setup):
    """u1's test prompt about i0 shows i3 Vanilla Body Mist (liked), i4 Argan Hair Oil (disliked), i5 Mint
    Lip Balm (liked) and the target Rose Hand Cream. The text cites i4, names the features cream and
    rose (the target's) and lavender (an item the prompt never showed), and invents a quoted title:
    grounding = (1 grounded mention + 2 grounded features) / (2 mentions + 3 features) = 0.6."""
    from reasoningrec.explanations.served import served_evidence

    evidence = served_evidence(setup, "tiny", "u1", "i0", HAND_WRITTEN, variant="full")
    assert [(h["title"], h["liked"], h["cited"]) for h in evidence.history] == [
        (TITLES[3], True, False),
        (TITLES[4], False, True),
        (TITLES[5], True, False),
    ]
    assert [h["item_id"] for h in evidence.cited_history] == ["i4"]
    assert evidence.features == ["cream", "lavender", "rose"] and evidence.ungrounded_features == ["lavender"]
    assert evidence.invented_items == ["Golden Oud Night Perfume"]
    assert evidence.grounding == pytest.approx(0.6) and evidence.personalised and not evidence.cited_target
    # Lavender Soap (i2) as the target: lavender is in the prompt now, and "this rose cream" is not.
    other = served_evidence(setup, "tiny", "u1", "i2", HAND_WRITTEN, variant="full")
    assert other.ungrounded_features == ["cream", "rose"]
    # Nothing to check: no item or feature named.
    assert served_evidence(setup, "tiny", "u1", "i0", "Maybe.", variant="full").grounding is None
    with pytest.raises(Exception, match="user 'ghost' has no 'test' sample"):
        served_evidence(setup, "tiny", "ghost", "i0", HAND_WRITTEN, variant="full")


def test_evidence_lines_show_what_is_cited_and_invented():
    from reasoningrec.commands.registry import evidence_lines

    lines = evidence_lines(
        {
            "history": [
                {"title": "Argan Hair Oil", "liked": False, "cited": True},
                {"title": "Mint Lip Balm", "liked": True, "cited": False},
            ],
            "cited_target": False,
            "features": ["cream", "lavender"],
            "ungrounded_features": ["lavender"],
            "invented_items": ["Golden Oud Night Perfume"],
            "grounding": 0.6,
        }
    )
    assert lines == [
        "evidence:    checked against its prompt (2 history items, the target)",
        "  cites history:  Argan Hair Oil (disliked)",
        "  cites target:   no",
        "  features:       cream, lavender (not in the prompt)",
        "  invented items: Golden Oud Night Perfume (not in the prompt)",
        "  grounding:      0.60 of its item references and features are in the prompt",
    ]
    assert evidence_lines({"unavailable": "no vocabulary"}) == ["evidence:    unavailable (no vocabulary)"]


def test_explain_and_versions_commands(setup, tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from reasoningrec.app import app
    from reasoningrec.commands import registry  # noqa: F401  (registers the commands)
    from reasoningrec.explanations import served

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(setup.model_dump(mode="json", by_alias=True)))
    if tracking.champion_version(setup, "tiny") is None:  # run alone: register a model first
        experiment.run_experiment(setup, "tiny", "reasoningrec", 4, 0)
    runner = CliRunner()
    command = [
        "explain",
        "-d",
        "tiny",
        "--user",
        "u1",
        "--item",
        "i0",
        "--max-new-tokens",
        "5",
        "--params",
        str(params_file),
    ]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    # Progress bars (stderr) share CliRunner's output, so read each field by its label.
    keys = (
        "model",
        "user / item",
        "prediction",
        "P(Yes)",
        "explanation",
        "evidence",
        "cites history",
        "invented items",
        "grounding",
    )
    lines = {key: re.search(rf"{re.escape(key)}:(.*)", result.output).group(1) for key in keys}
    assert lines["model"].strip().startswith("reasoningrec-tiny v") and "@champion" in lines["model"]
    assert 0 <= float(lines["P(Yes)"]) <= 1
    assert lines["prediction"].strip().split()[0] in {"Yes", "No"}
    assert "3 history items" in lines["evidence"]

    # --json: the same answer as data; the evidence is that of the explanation the model wrote.
    answer = json.loads(runner.invoke(app, [*command, "--json"]).stdout)
    assert answer["label"] == int(answer["p_yes"] >= 0.5) and answer["item_title"] == TITLES[0]
    expected = served.served_evidence(setup, "tiny", "u1", "i0", answer["explanation"], variant="full")
    assert answer["evidence"] == json.loads(json.dumps(expected.to_dict()))
    assert [h["title"] for h in answer["evidence"]["history"]] == TITLES[3:6]

    # A hand-written explanation in place of the tiny model's noise shows every kind of evidence.
    monkeypatch.setattr(
        serving.ReasoningRecModel,
        "predict",
        lambda self, context, frame, params=None: pd.DataFrame(
            {"p_yes": [0.8], "prediction": [1], "explanation": [HAND_WRITTEN]}
        ),
    )
    shown = runner.invoke(app, command)
    assert shown.exit_code == 0, shown.output
    assert "cites history:  Argan Hair Oil (disliked)" in shown.output
    assert "features:       cream, lavender (not in the prompt), rose" in shown.output
    assert "invented items: Golden Oud Night Perfume (not in the prompt)" in shown.output
    assert "grounding:      0.60" in shown.output and "prediction:  Yes (will like)" in shown.output

    listed = runner.invoke(app, ["versions", "-d", "tiny", "--params", str(params_file)])
    assert listed.exit_code == 0 and "champion" in listed.output and "reasoningrec K=4" in listed.output


def test_explanation_metrics_with_the_embedded_bertscore():
    from reasoningrec.scoring import Explanation

    same = "The user enjoys gentle floral scents, so they will like this cream."
    explanations = [
        Explanation(f"Prediction: Yes\n{same}", 1, same),
        Explanation("Prediction: No", 0, ""),  # wrote no reasoning
        Explanation("I cannot tell.", None, "I cannot tell."),  # parse failure, no reference
    ]
    references = [f"Prediction: Yes\n{same}", "Prediction: No\nThe user avoids strong scents.", None]
    result, logged = evaluation.evaluate_explanations(
        explanations, references, [1, 1, 0], model="embedded", num_layers=6
    )
    assert result["parse_failure_rate"] == pytest.approx(1 / 3)
    assert result["stated_label_agreement"] == pytest.approx(1 / 2)  # Yes == 1; No != 1
    assert result["bertscore_pairs"] == 2 and result["empty_explanation_rate"] == 0.5
    # Identical text scores 1, the empty explanation 0: the mean is 0.5.
    assert result["test_bertscore_f1"] == pytest.approx(0.5, abs=1e-4)
    assert logged == {"bertscore_model": "all-MiniLM-L6-v2 (embedded)", "bertscore_num_layers": "6"}
