"""Reading the authors' pickled intermediates safely and naming each record's user
(tools/authors_intermediates.py)."""

from __future__ import annotations

import pickle
from collections import OrderedDict

import pytest

from tools import authors_intermediates as ai


def test_read_pickle_loads_plain_data_and_refuses_classes():
    data = {"0": "text", "1": ["a", 2]}
    assert ai.read_pickle(pickle.dumps(data)) == data
    with pytest.raises(pickle.UnpicklingError, match="refusing to load collections.OrderedDict"):
        ai.read_pickle(pickle.dumps(OrderedDict(data)))


def test_rewritten_output_moves_the_prediction_first():
    assert ai.rewritten_output("  1. likes x\n  2. so yes\nPrediction: Yes") == "Prediction: Yes \n1. likes x 2. so yes"


def test_record_users_follow_the_ascending_order_between_identical_users():
    reasoning = {"3": "a\nPrediction: Yes", "5": "a\nPrediction: Yes", "7": "b\nPrediction: No"}
    outputs = [ai.rewritten_output(reasoning[u]) for u in ("3", "5", "7")]
    assert ai.record_users(outputs, reasoning) == ["3", "5", "7"]
    assert ai.record_users([outputs[0], "unknown", outputs[2]], reasoning) == ["3", None, "7"]
