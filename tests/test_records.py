"""Records: prompt/completion text per variant, chat rendering, shortening, K-shot sampling, the stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reasoningrec import records as rec
from reasoningrec.methods import VARIANTS
from reasoningrec.records import ItemText


@pytest.fixture(scope="module")
def tok():
    from reasoningrec.testing import build_tiny_tokenizer

    return build_tiny_tokenizer()


HISTORY = [
    (1, ItemText("Fresh Eau De Parfum", "Brand: Fresh", "A light fig scent that lasts.")),
    (0, ItemText("Harsh Shampoo", "Brand: Suave", "Dries the hair.")),
    (1, ItemText("Monoi Oil", "", "Jasmine coconut oil for dry skin.")),
]
TARGET = ItemText("Coconut Body Wash", "Brand: Bath & Body Works; Price: $12", "A creamy coconut wash.")
PROFILE = "The user prefers natural ingredients and gentle scents."


def test_full_prompt_has_every_section_oldest_first():
    text = rec.build_prompt("full", "beauty", PROFILE, HISTORY, TARGET)
    assert text.startswith("You are an expert beauty product recommender.")
    assert PROFILE in text and "A light fig scent" in text and "A creamy coconut wash." in text
    assert text.index("Fresh Eau De Parfum") < text.index("Harsh Shampoo") < text.index("Monoi Oil")
    assert "Liked: Fresh Eau De Parfum (Brand: Fresh)" in text and "Disliked: Harsh Shampoo" in text
    assert '"Prediction: Yes"' in text and "100 words" in text


def test_ablations_and_tallrec_drop_what_they_should():
    no_profile = rec.build_prompt("no-profile", "beauty", PROFILE, HISTORY, TARGET)
    no_desc = rec.build_prompt("no-description", "beauty", PROFILE, HISTORY, TARGET)
    titles = rec.build_prompt("titles", "movies", PROFILE, HISTORY, TARGET)
    label_only = rec.build_prompt("label-only", "beauty", PROFILE, HISTORY, TARGET)
    assert PROFILE not in no_profile and "A light fig scent" in no_profile
    assert PROFILE in no_desc and "A light fig scent" not in no_desc and "Brand: Fresh" in no_desc
    assert 'User Preference: "Fresh Eau De Parfum", "Monoi Oil"' in titles
    assert 'User Unpreference: "Harsh Shampoo"' in titles and "target movie" in titles
    assert PROFILE not in titles and "fig" not in titles
    assert PROFILE in label_only and "100 words" not in label_only


def test_completions():
    assert rec.build_completion("full", 1, "Prediction: Yes\n 1. Likes coconut.") == "Prediction: Yes\n1. Likes coconut."
    assert rec.build_completion("no-profile", 0, "Too strong.") == "Prediction: No\nToo strong."
    assert rec.build_completion("titles", 1, "ignored") == "Prediction: Yes"
    assert rec.build_completion("label-only", 0, None) == "Prediction: No"


def test_unknown_variant_or_domain_is_a_config_error():
    from reasoningrec.errors import ConfigError

    with pytest.raises(ConfigError, match="variant"):
        rec.build_prompt("bogus", "beauty", "", HISTORY, TARGET)
    with pytest.raises(ConfigError, match="domain"):
        rec.build_prompt("full", "cars", "", HISTORY, TARGET)


def test_shortening_drops_the_oldest_history_item_first(tok):
    full = rec.fit_record(tok, "full", "beauty", PROFILE, HISTORY, TARGET, "Prediction: Yes\nok", 10_000)
    assert full.dropped == 0 and full.history_kept == 3
    limit = full.n_tokens - 5  # one item must go
    fitted = rec.fit_record(tok, "full", "beauty", PROFILE, HISTORY, TARGET, "Prediction: Yes\nok", limit)
    assert fitted.dropped >= 1 and fitted.n_tokens <= limit
    assert "Fresh Eau De Parfum" not in fitted.prompt_text  # the oldest went first
    assert "Monoi Oil" in fitted.prompt_text  # the newest stays
    assert fitted.completion.startswith("Prediction: Yes\nok")  # the answer is never cut
    tiny = rec.fit_record(tok, "full", "beauty", PROFILE, HISTORY, TARGET, "Prediction: Yes\nok", 64)
    assert tiny.history_kept == 0 and tiny.n_tokens > 64  # reported, not silently cut


def test_kshots_are_stratified_and_nested():
    labels = np.array([1] * 150 + [0] * 50)
    np.random.default_rng(0).shuffle(labels)
    masks = rec.kshot_members(labels, [16, 64, 128], seed=42)
    for k, mask in masks.items():
        assert mask.sum() == k
        assert abs(labels[mask].mean() - 0.75) <= 1 / k + 1e-9  # within one record of the share
    assert (masks[16] <= masks[64]).all() and (masks[64] <= masks[128]).all()
    again = rec.kshot_members(labels, [16, 64, 128], seed=42)
    other = rec.kshot_members(labels, [16, 64, 128], seed=43)
    assert (again[64] == masks[64]).all() and not (other[64] == masks[64]).all()


def _stage_inputs(n_users=30):
    rng = np.random.default_rng(0)
    items = pd.DataFrame(
        {"item_id": [str(i) for i in range(20)], "title": [f"Item {i}" for i in range(20)],
         "brand": ["Acme"] * 20, "price": [None] * 20}
    )
    rows = []
    for u in range(n_users):
        for split in ("train", "valid", "test"):
            hist = rng.choice(20, 4, replace=False).astype(str).tolist()
            rows.append(
                {"user_id": str(u), "split": split, "target_item": str(rng.integers(20)), "target_rating": 4.0,
                 "target_timestamp": 1, "label": np.int8(u % 3 != 0), "history_items": hist,
                 "history_labels": [1, 0, 1, 1], "profile_items": [], "profile_labels": []}
            )
    samples = pd.DataFrame(rows)
    descriptions = pd.DataFrame({"item_id": items["item_id"], "description": "Nice.", "source": "llm", "model": "m"})
    profiles = pd.DataFrame({"user_id": [str(u) for u in range(n_users)], "profile": "Likes things.",
                             "source": "llm", "model": "m"})
    reasoning = samples[samples["split"] != "test"][["user_id", "split", "label"]].assign(
        reasoning="Because.", source="llm", model="m")
    return samples, items, descriptions, profiles, reasoning


def test_build_records_end_to_end(tok):
    samples, items, descriptions, profiles, reasoning = _stage_inputs()
    out, summary = rec.build_records(
        samples, items, tokenizer=tok, domain="beauty", variants=["full", "titles"], k_shots=[8, 16],
        valid_size=6, max_length=2048, seed=1, descriptions=descriptions, profiles=profiles, reasoning=reasoning,
    )
    full = out[out["variant"] == "full"]
    assert summary["splits"] == {
        "train": {"records": 16, "likes": int(full[full.split == "train"].label.sum())},
        "valid": {"records": 6, "likes": int(full[full.split == "valid"].label.sum())},
        "test": {"records": 30, "likes": 20},
    }
    train = full[full["split"] == "train"]
    assert train["in_k8"].sum() == 8 and (train["in_k8"] <= train["in_k16"]).all()
    assert not full.loc[full.split != "train", "in_k16"].any()
    assert full.loc[full.split == "train", "completion_text"].str.startswith("Prediction: ").all()
    assert full["completion_text"].str.contains("\nBecause.").sum() == 22  # train + valid have reasoning
    assert (full.loc[full.split == "test", "reference"].isna()).all()
    assert set(out.columns) >= {"user_id", "split", "label", "variant", "prompt_text", "completion_text", "prompt"}
    # Same users in every variant.
    assert sorted(out[out.variant == "titles"].user_id) == sorted(full.user_id)


def test_build_records_catches_bad_inputs(tok):
    from reasoningrec.errors import ConfigError, DataError

    samples, items, descriptions, profiles, reasoning = _stage_inputs(6)
    kwargs = dict(tokenizer=tok, domain="beauty", k_shots=[4], valid_size=2, max_length=2048, seed=1)
    with pytest.raises(ConfigError, match="profiles.parquet"):
        rec.build_records(samples, items, variants=["full"], descriptions=descriptions, reasoning=reasoning, **kwargs)
    flipped = reasoning.assign(label=1 - reasoning["label"])
    with pytest.raises(DataError, match="reasoning.parquet.*label"):
        rec.build_records(samples, items, variants=["no-profile"], descriptions=descriptions, reasoning=flipped, **kwargs)
    with pytest.raises(DataError, match="items.parquet"):
        rec.build_records(samples, items.iloc[:3], variants=["titles"], **kwargs)


def test_run_records_writes_parquet_and_summary(tok, tmp_path, params):
    samples, items, descriptions, profiles, reasoning = _stage_inputs(12)
    for name, frame in [("samples", samples), ("items", items), ("descriptions", descriptions),
                        ("profiles", profiles), ("reasoning", reasoning)]:
        frame.to_parquet(tmp_path / f"{name}.parquet")
    cfg = params.records.model_copy(update={"k_shots": [4, 8], "valid_size": 4})
    summary = rec.run_records(params.model_copy(update={"records": cfg}), "beauty", tmp_path, tokenizer=tok)
    written = pd.read_parquet(tmp_path / "records.parquet")
    assert summary["rows"] == len(written) == 5 * (8 + 4 + 12)
    assert (tmp_path / "records.json").is_file()
    assert set(written["variant"]) == set(VARIANTS)


def test_real_paper_items_fit_with_real_lengths(tok):
    """Real Amazon titles and the authors' LLM descriptions: the prompt fits and keeps the newest items."""
    import json

    from conftest import data_file

    info = json.loads(data_file("reasoningrec-paper/beauty/processed_item_information.json").read_text())
    texts = [ItemText(v["title"], f"Brand: {v.get('brand', '')}", v.get("description", "")) for v in list(info.values())[:12]]
    history = [(i % 2, t) for i, t in enumerate(texts[:10])]
    fitted = rec.fit_record(tok, "full", "beauty", PROFILE, history, texts[10], "Prediction: No\nBecause.", 1024)
    assert fitted.n_tokens <= 1024 and fitted.history_kept < 10
    assert texts[9].title in fitted.prompt_text


def test_page_long_titles_are_clipped():
    items = pd.DataFrame({"item_id": ["1"], "title": ["#aloha-bb{color:gray} " * 100]})
    text = rec._item_texts(items, None)["1"]
    assert len(text.title) <= rec.MAX_TITLE_CHARS + 4 and text.title.endswith(" ...")


def test_looping_or_echoing_texts_are_not_shown_but_cut_off_ones_are():
    from reasoningrec.records import usable_texts

    frame = pd.DataFrame({
        "user_id": ["a", "b", "c", "d"], "profile": ["Likes dramas.", "Likes drama", "loop loop", "<title>X"],
        "valid": [True, False, False, False], "problem": [None, "truncated", "repetitive", "echo"],
    })
    assert usable_texts(frame)["user_id"].tolist() == ["a", "b"]
    assert usable_texts(frame.drop(columns=["problem"]))["user_id"].tolist() == ["a"]
    assert usable_texts(frame.drop(columns=["valid", "problem"])) is not None and usable_texts(None) is None
