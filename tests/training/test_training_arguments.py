"""Training settings resolved from the hardware and the model size."""

from __future__ import annotations

from reasoningrec.config import TrainConfig
from reasoningrec.training.arguments import COMPILE_MIN_PARAMS, wants_compile


def test_compile_setting_resolves_by_device_and_model_size():
    assert TrainConfig().compile == "auto"
    assert wants_compile("auto", True, 7_000_000_000) and not wants_compile("auto", True, 135_000_000)
    assert not wants_compile("auto", False, 7_000_000_000) and not wants_compile(True, False, COMPILE_MIN_PARAMS)
    assert wants_compile(True, True, 1) and not wants_compile(False, True, COMPILE_MIN_PARAMS)
