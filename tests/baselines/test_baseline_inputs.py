"""Training sequences, encoding and the like-rate heuristics on a hand-computed case."""

from __future__ import annotations

import pandas as pd
import pytest
from baseline_data import leave_last_out, write_work

from reasoningrec.baselines import common, heuristics, run_baselines
from reasoningrec.config import parse_params
from reasoningrec.errors import DataError

# user: [(item, rating)] in time order; like = rating > 3.
HAND = {
    "a": [("i1", 5), ("i2", 1), ("i3", 4), ("i4", 2), ("i5", 5)],
    "b": [("i1", 2), ("i2", 4), ("i3", 5), ("i6", 1)],
    "c": [("i1", 5), ("i2", 5), ("i7", 1)],
}


def hand_interactions() -> pd.DataFrame:
    rows = [
        {"user_id": u, "item_id": item, "rating": float(r), "timestamp": 100 + t, "review": None}
        for u, seq in HAND.items()
        for t, (item, r) in enumerate(seq)
    ]
    return pd.DataFrame(rows)


def test_training_sequences_stop_before_the_valid_target():
    inter = hand_interactions()
    seqs = common.training_sequences(inter, leave_last_out(inter, 5), like_threshold=3)
    assert seqs["a"] == common.UserSequence(["i1", "i2", "i3"], [1, 0, 1])
    assert seqs["b"] == common.UserSequence(["i1", "i2"], [0, 1])
    assert seqs["c"] == common.UserSequence(["i1"], [1])


def test_every_training_position_becomes_an_example_and_unknown_items_map_to_oov():
    inter = hand_interactions()
    samples = leave_last_out(inter, 5)
    seqs = common.training_sequences(inter, samples, like_threshold=3)
    index = common.ItemIndex.from_sequences(seqs)
    train = common.encode_training(seqs, index, k=2)
    # a: positions 1, 2; b: position 1; c: none (a single item has no history).
    assert len(train) == 3
    i1, i2, i3 = index.lookup(["i1", "i2", "i3"])
    assert train.hist_items.tolist() == [[0, i1], [i1, i2], [0, i1]]
    assert train.hist_signal.tolist() == [[0, common.LIKE], [common.LIKE, common.DISLIKE], [0, common.DISLIKE]]
    assert train.target.tolist() == [i2, i3, i2]
    assert train.label.tolist() == [0, 1, 1]
    valid = common.encode_samples(samples[samples["split"] == "valid"], index, k=2)
    assert valid.target.tolist() == [index.oov, i3, i2]  # a's valid target i4 never occurs in training
    assert valid.hist_items.tolist()[0] == [i2, i3]  # last k of a's history
    assert index.oov == index.size - 1 and 0 not in index.ids.values()


def test_heuristics_match_hand_computed_values(tmp_path):
    work = write_work(tmp_path / "hand", hand_interactions(), k=5)
    params = parse_params(
        {
            "datasets": {"hand": {"source": "table", "path": "x", "history_len": 5}},
            "baselines": {"item_prior_strength": 2.0},
        }
    )
    summary = run_baselines(params, "hand", out_dir=work, methods=heuristics_methods(), track=False)
    g = 4 / 6  # training likes: a 2/3, b 1/2, c 1/1
    assert summary.global_like_rate == pytest.approx(g)
    user = pd.read_parquet(work / "baselines" / "user-like-rate.parquet").set_index(["user_id", "split"])["p_yes"]
    assert user[("a", "valid")] == pytest.approx(2 / 3)
    assert user[("a", "test")] == pytest.approx(1 / 2)
    assert user[("b", "valid")] == pytest.approx(1 / 2)
    assert user[("b", "test")] == pytest.approx(2 / 3)
    assert user[("c", "test")] == pytest.approx(1.0)
    item = pd.read_parquet(work / "baselines" / "item-like-rate.parquet").set_index(["user_id", "split"])["p_yes"]
    assert item[("a", "valid")] == pytest.approx(g)  # i4 unseen: the prior
    assert item[("b", "valid")] == pytest.approx((1 + 2 * g) / (1 + 2))  # i3: 1 like of 1
    assert item[("c", "valid")] == pytest.approx((1 + 2 * g) / (2 + 2))  # i2: 1 like of 2
    assert set(user.index.get_level_values("split")) == {"valid", "test"}
    # The empty-history fallback (a train sample of c has no history).
    samples = leave_last_out(hand_interactions(), 5)
    c_train = samples[(samples.user_id == "c") & (samples.split == "train")]
    assert heuristics.user_like_rate(c_train, fallback=0.25).tolist() == [0.25]


def heuristics_methods() -> tuple[str, ...]:
    return ("user-like-rate", "item-like-rate")


def test_bad_samples_name_file_row_and_field(tmp_path):
    samples = leave_last_out(hand_interactions(), 5)
    samples.drop(columns=["history_labels"]).to_parquet(tmp_path / "s1.parquet")
    with pytest.raises(DataError, match=r"s1\.parquet: missing column\(s\) \['history_labels'\]"):
        common.read_samples(tmp_path / "s1.parquet")
    broken = samples.copy()
    broken.at[4, "history_labels"] = []
    broken.to_parquet(tmp_path / "s2.parquet")
    with pytest.raises(DataError, match=r"s2\.parquet, row 4, field 'history_labels'"):
        common.read_samples(tmp_path / "s2.parquet")


def test_a_target_missing_from_interactions_is_reported():
    inter = hand_interactions()
    samples = leave_last_out(inter, 5)
    with pytest.raises(DataError, match="user 'a'.*'i4'"):
        common.training_sequences(inter[inter.item_id != "i4"], samples, 3, "interactions.parquet")


def test_cli_accepts_seed_lists_in_both_spellings():
    import typer

    from reasoningrec.commands.report import parse_seeds

    assert parse_seeds("0", ["1", "2"]) == [0, 1, 2]
    assert parse_seeds("0,1", []) == [0, 1]
    assert parse_seeds(None, []) is None
    with pytest.raises(typer.BadParameter):
        parse_seeds("0", ["x"])
