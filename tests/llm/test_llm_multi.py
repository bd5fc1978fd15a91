"""Local generation over several worker processes (reasoningrec.llm.multi), on CPU workers. The
greedy equality with one process, on a real model, is tested on a stage in test_synthesis_stages.py."""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial

import pytest
from multi_fakes import broken, scripted

from reasoningrec.errors import ConfigError
from reasoningrec.llm.base import GenerationSettings, LLMBackendError
from reasoningrec.llm.cache import CachedBackend
from reasoningrec.llm.multi import MultiDeviceBackend, resolve_devices, worker_placement

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=12)


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_devices_setting():
    assert resolve_devices("auto", 0) == ["cpu"] and resolve_devices("auto", 2) == ["cuda:0", "cuda:1"]
    assert resolve_devices(2, 0) == ["cpu", "cpu"]  # CPU workers: the path, not a speed-up
    assert resolve_devices(2, 4) == ["cuda:0", "cuda:1"] and resolve_devices([3, 1], 4) == ["cuda:3", "cuda:1"]
    with pytest.raises(ConfigError, match=r"llm.devices=3 but only 2 GPU"):
        resolve_devices(3, 2)
    with pytest.raises(ConfigError, match=r"GPU\(s\) \[4\] are not among the 2 visible"):
        resolve_devices([0, 4], 2)
    with pytest.raises(ConfigError, match="distinct GPU indices"):
        resolve_devices([1, 1], 2)
    with pytest.raises(ConfigError, match=">= 1"):
        resolve_devices(0, 2)


def test_each_gpu_worker_sees_only_its_gpu():
    assert worker_placement("cuda:1", {}) == ({"CUDA_VISIBLE_DEVICES": "1"}, "cuda")
    assert worker_placement("cuda:1", {"CUDA_VISIBLE_DEVICES": "4,6"}) == ({"CUDA_VISIBLE_DEVICES": "6"}, "cuda")
    assert worker_placement("cpu", {"CUDA_VISIBLE_DEVICES": "0"}) == ({"CUDA_VISIBLE_DEVICES": ""}, "cpu")
    with pytest.raises(ConfigError, match="has no GPU 2"):
        worker_placement("cuda:2", {"CUDA_VISIBLE_DEVICES": "4,6"})


def test_the_devices_setting_is_validated_with_the_params():
    from reasoningrec.config import parse_params

    assert parse_params({"llm": {"devices": "auto"}}).llm.devices == "auto"
    assert parse_params({"llm": {"devices": [0, 2]}}).llm.devices == [0, 2]
    with pytest.raises(ConfigError, match="devices"):
        parse_params({"llm": {"devices": 0}})


def test_a_killed_worker_fails_the_call_naming_it_and_a_rerun_sends_only_the_missing_prompts(tmp_path):
    log = tmp_path / "sent.txt"
    factory = partial(scripted, log_path=str(log), die_marker=str(tmp_path / "died"))
    # Shards by length, longest first round-robin: worker 0 gets "die" (the longest) and 2 more.
    prompts = ["die", "a", "bb", "c", "dd", "e"]
    spread = MultiDeviceBackend(factory, ["cpu", "cpu"], name="scripted", model_id="scripted-1", batch_size=1)
    cached = CachedBackend(spread, tmp_path / "cache.sqlite", chunk_size=len(prompts))
    try:
        with pytest.raises(LLMBackendError, match=r"worker \d on cpu \(pid \d+\) died \(exit code -9\)") as caught:
            cached.generate([chat(p) for p in prompts], GREEDY)
        first = log.read_text().split()
        made = [p for p in first if p != "die"]
        assert "die" in first and set(made) < set(prompts)
        assert f"{len(made)} of {len(prompts)} replies were made" in str(caught.value)
        log.unlink()
        replies = cached.generate([chat(p) for p in prompts], GREEDY)
        assert sorted(log.read_text().split()) == sorted(set(prompts) - set(made))  # a fresh worker, the rest only
        assert [g.text.split(" on ")[0] for g in replies] == [f"reply to {p}" for p in prompts]
        assert [g.cached for g in replies] == [p in made for p in prompts]
    finally:
        cached.close()
    assert spread.worker_pids() == [None, None]


def test_replies_come_from_the_cache_on_a_rerun_with_another_number_of_workers(tmp_path):
    log = tmp_path / "sent.txt"
    prompts = [chat(p) for p in ("one", "two", "three", "four")]
    single = CachedBackend(scripted("cpu", log_path=str(log)), tmp_path / "cache.sqlite")
    first = single.generate(prompts[:2], GREEDY)
    single.close()
    log.unlink()
    spread = MultiDeviceBackend(
        partial(scripted, log_path=str(log)), ["cpu", "cpu"], name="scripted", model_id="scripted-1", batch_size=1
    )
    cached = CachedBackend(spread, tmp_path / "cache.sqlite")
    streamed = {}
    try:
        replies = cached.generate(prompts, GREEDY, on_reply=lambda pairs: streamed.update(pairs))
        pids = spread.worker_pids()
    finally:
        cached.close()
    assert len(set(pids)) == 2 and os.getpid() not in pids  # two processes of their own
    assert sorted(log.read_text().split()) == ["four", "three"]
    assert [streamed[i] for i in range(len(prompts))] == replies
    assert replies[:2] == [replace(g, cached=True) for g in first]
    assert cached.parallelism == 2


def test_a_worker_that_cannot_start_says_which_and_why():
    spread = MultiDeviceBackend(broken, ["cpu", "cpu"], name="scripted", model_id="scripted-1")
    with pytest.raises(LLMBackendError, match=r"worker 0 on cpu did not start: OSError: no model weights for cpu"):
        spread.generate([chat("x")], GREEDY)
    assert spread.worker_pids() == [None, None]
