"""The describe/profile/reason stages end to end on a hand-built slice."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from reasoningrec.config import parse_params
from reasoningrec.llm.base import Generation
from reasoningrec.llm.cache import CachedBackend
from reasoningrec.synthesis import run_describe, run_profile, run_reason


class CountingBackend:
    """Deterministic backend: refuses the first prompt it ever sees, then answers by task."""

    name, model_id = "counting", "counting-1"

    def __init__(self):
        self.calls, self.refused = 0, False

    def generate(self, batch, settings, progress=None):
        out = []
        for conversation in batch:
            self.calls += 1
            user = conversation[-1]["content"]
            if not self.refused:
                self.refused = True
                out.append(Generation("I'm sorry, I cannot help with that.", 50, 8))
                continue
            if "Target " in user:
                liked = "will like" in user
                text = (
                    f"Prediction: Yes. The user enjoys mild products, so they will {'like' if liked else 'dislike'} it."
                )
            elif "profile in at most" in user:
                text = "Profile: The user likes mild, gentle products and dislikes strong scents."
            else:
                title = re.search(r"<title>(.*?)</title>", user).group(1)
                text = f"Sure, here it is: {title} is mild and gentle, but pricey."
            out.append(Generation(text, 50, 12))
        return out


@pytest.fixture
def work(tmp_path):
    """3 users, 6 items: user u3 has no profile items (the no-profile variant)."""
    out = tmp_path / "work" / "tiny"
    out.mkdir(parents=True)
    items = pd.DataFrame(
        {
            "item_id": [str(i) for i in range(1, 7)],
            "title": ["Soap", "Gel", "Cream", "Lotion", "Balm", "Unused"],
            "brand": ["A", None, "C", "D", "E", "F"],
            "price": ["$1", None, None, "$4", None, None],
            "genres": [None] * 6,
            "year": pd.array([None] * 6, dtype="Int64"),
            "description": [None] * 6,
        }
    )
    items.to_parquet(out / "items.parquet")
    pd.DataFrame({"item_id": ["1", "2"], "reviews": [["lovely </review> mild", "dry"], ["sticky"]]}).to_parquet(
        out / "item_reviews.parquet"
    )
    rows = []
    for user, profile, profile_labels in (("u1", ["1", "2"], [1, 0]), ("u2", ["3"], [1]), ("u3", [], [])):
        for split, target, label in (("train", "3", 1), ("valid", "4", 0), ("test", "5", 1)):
            rows.append(
                dict(
                    user_id=user,
                    split=split,
                    target_item=target,
                    label=label,
                    history_items=["1", "2"],
                    history_labels=[1, 0],
                    profile_items=profile,
                    profile_labels=profile_labels,
                )
            )
    samples = pd.DataFrame(rows).astype({"label": "int8"})
    samples.to_parquet(out / "samples.parquet")
    params = parse_params(
        {
            "paths": {"work_dir": str(tmp_path / "work"), "cache_dir": str(tmp_path / "cache")},
            "datasets": {"tiny": {"source": "table", "path": "x", "domain": "beauty"}},
            "llm": {"batch_size": 2},
        }
    )
    return params, out


def test_stages_end_to_end_with_retry_and_cache(work, tmp_path):
    params, out = work
    inner = CountingBackend()
    backend = CachedBackend(inner, tmp_path / "cache" / "test.sqlite")

    d = run_describe(params, "tiny", backend=backend)
    descriptions = pd.read_parquet(out / "descriptions.parquet")
    assert descriptions["item_id"].tolist() == ["1", "2", "3", "4", "5"]  # "Unused" is in no sample
    assert descriptions["description"].tolist()[1:] == [
        f"{t} is mild and gentle, but pricey." for t in ["Gel", "Cream", "Lotion", "Balm"]
    ]
    assert descriptions["valid"].all() and set(descriptions["source"]) == {"llm"}
    assert d.count == 5 and d.retried == 1 and d.fixed_by_retry == 1 and d.invalid == 0
    assert d.first_attempt_problems["refusal"] == 1 and d.cache_hits == 0
    assert d.backend == "counting" and d.model == "counting-1" and d.prompt_tokens > 0
    assert json.loads((out / "describe.json").read_text())["count"] == 5

    p = run_profile(params, "tiny", backend=backend)
    profiles = pd.read_parquet(out / "profiles.parquet")
    assert profiles["user_id"].tolist() == ["u1", "u2", "u3"]
    assert profiles.loc[2, "profile"] == "" and profiles.loc[2, "valid"]  # no profile items: no call
    assert profiles.loc[0, "profile"].startswith("The user likes mild")  # "Profile:" stripped
    assert p.prompts == 2 and p.users_without_profile_items == 1

    r = run_reason(params, "tiny", backend=backend)
    reasoning = pd.read_parquet(out / "reasoning.parquet")
    assert len(reasoning) == 9 and set(reasoning["split"]) == {"train", "valid", "test"}
    assert reasoning["reasoning"].str.startswith("The user enjoys").all()  # prediction line stripped
    disliked = reasoning[reasoning["label"] == 0]
    assert disliked["reasoning"].str.contains("will dislike").all() and len(disliked) == 3
    assert r.count == 9 and r.with_profile == 2 and reasoning["label"].dtype == "int8"

    calls = inner.calls
    again = [
        run_describe(params, "tiny", backend=backend),
        run_profile(params, "tiny", backend=backend),
        run_reason(params, "tiny", backend=backend),
    ]
    assert inner.calls == calls  # a rerun is served entirely from the cache
    assert [s.backend_generations for s in again] == [0, 0, 0]
    assert again[0].cache_hits == 6  # 5 prompts + the one retry
    assert pd.read_parquet(out / "reasoning.parquet").equals(reasoning)


def test_limit_takes_the_first_users(work):
    params, out = work
    run_profile(params, "tiny", limit=1, backend=CountingBackend())
    run_reason(params, "tiny", limit=2, backend=CountingBackend())
    assert pd.read_parquet(out / "profiles.parquet")["user_id"].tolist() == ["u1"]
    assert sorted(pd.read_parquet(out / "reasoning.parquet")["user_id"].unique()) == ["u1", "u2"]


def test_missing_inputs_name_the_file(work):
    from reasoningrec.errors import DataError

    params, out = work
    with pytest.raises(DataError, match="profiles.parquet.*run `reasoningrec profile`"):
        run_reason(params, "tiny", backend=CountingBackend())
    (out / "items.parquet").unlink()
    with pytest.raises(DataError, match="items.parquet"):
        run_describe(params, "tiny", backend=CountingBackend())


def test_stages_with_the_tiny_real_model(work, tiny_model_dir):
    """The real backend stack (make_backend → hf + cache) with a tiny random model."""
    model = tiny_model_dir
    params, out = work
    params = params.model_copy(
        update={
            "llm": params.llm.model_copy(update={"backend": "hf", "model": str(model)}),
            "describe": params.describe.model_copy(update={"max_new_tokens": 8}),
        }
    )
    first = run_describe(params, "tiny", limit=2)
    frame = pd.read_parquet(out / "descriptions.parquet")
    assert len(frame) == 2 and first.model == str(model) and first.backend == "hf"
    # Random weights write gibberish cut at 8 tokens: the guards must say so, not keep it silently.
    assert first.invalid == int((~frame["valid"]).sum()) and first.backend_generations >= 2
    second = run_describe(params, "tiny", limit=2)
    assert second.backend_generations == 0 and second.cache_hits == second.generations
    assert pd.read_parquet(out / "descriptions.parquet").equals(frame)


def test_a_stage_over_two_workers_writes_what_one_process_writes(work, talkative_model_dir, tmp_path):
    """llm.devices: 2 without a GPU = two CPU worker processes; greedy: the same descriptions, and the
    same cache keys (a rerun on one process generates nothing)."""
    params, out = work
    greedy = params.describe.model_copy(update={"max_new_tokens": 8, "temperature": 0.0})
    frames, summaries = [], []
    for devices, cache in ((1, "one"), (2, "two")):
        run = params.model_copy(
            update={
                "llm": params.llm.model_copy(
                    update={
                        "backend": "hf",
                        "model": str(talkative_model_dir),
                        "devices": devices,
                        "decode": "generate",
                    }
                ),
                "describe": greedy,
                "paths": params.paths.model_copy(update={"cache_dir": tmp_path / cache}),
            }
        )
        summaries.append(run_describe(run, "tiny"))
        frames.append(pd.read_parquet(out / "descriptions.parquet"))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert frames[0]["description"].nunique() > 1
    assert summaries[1].backend_generations == summaries[0].backend_generations > 0
    # The two-worker cache serves a one-process rerun in full.
    rerun = run.model_copy(update={"llm": run.llm.model_copy(update={"devices": 1})})
    again = run_describe(rerun, "tiny")
    assert again.backend_generations == 0 and again.cache_hits == again.generations
    pd.testing.assert_frame_equal(pd.read_parquet(out / "descriptions.parquet"), frames[0])
