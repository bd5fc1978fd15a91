"""The throughput benchmark runs end to end on CPU with the tiny model and writes its markdown row."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# benchmarks/ is a folder of scripts, not an installed package: load the file itself.
_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "llm_throughput.py"
_SPEC = importlib.util.spec_from_file_location("llm_throughput", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up here
_SPEC.loader.exec_module(bench)


def test_benchmark_runs_on_cpu_and_appends_its_row(tiny_model_dir, tmp_path):
    model = tiny_model_dir
    out = tmp_path / "bench.md"
    argv = ["--model", str(model), "--device", "cpu", "--batch-size", "3", "--new-tokens", "4"]
    (result,) = bench.main([*argv, "--naive-prompts", "1", "--warmup", "0", "--hbm-gbps", "100", "--out", str(out)])
    assert result.batched_tps > 0 and result.naive_tps > 0 and 0 < result.roofline < 1
    lines = out.read_text().splitlines()
    assert lines[:2] == bench.HEADER.splitlines()
    assert len(lines) == 3 and lines[2].startswith(f"| {model} | cpu | float32 | generate | 3 | 4 |")
    assert lines[2] == result.row() and lines[2].endswith("% |")


def test_rows_append_under_one_header(tmp_path):
    out = tmp_path / "docs" / "bench.md"
    row = bench.Result("m", "cpu", "float32", "static", 8, 16, 80.0, 10.0, 12.5, None).row()
    assert row == "| m | cpu | float32 | static | 8 | 16 | 80.0 | 10.0 | 8.0x | 12.5 | n/a |"
    bench.append_row(out, row)
    bench.append_row(out, row.replace("n/a", "41%"))
    assert out.read_text().splitlines() == [*bench.HEADER.splitlines(), row, row.replace("n/a", "41%")]


def test_random_llama2_is_shaped_like_the_real_7b():
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(bench.llama2_7b_config())
    params = sum(p.numel() for p in model.parameters())
    assert params == 6_738_415_616  # Llama-2-7B's published parameter count
    # bf16: every weight but the input embedding is read once per decode step.
    assert bench.weight_bytes_per_step(model.to(torch.bfloat16)) == 2 * (params - 32000 * 4096)


def test_random_mistral_is_shaped_like_the_real_7b():
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(bench.mistral_7b_config())
    assert sum(p.numel() for p in model.parameters()) == 7_241_732_096  # Mistral-7B-v0.1


def test_static_engine_matches_greedy_generate_on_the_7b_family_shape():
    """The backend's static engine decodes exactly what generate does on a tiny Mistral-shaped
    model (grouped-query attention, fp32, left-padded batch, fixed length)."""
    import torch
    from transformers import LlamaForCausalLM

    from reasoningrec.llm.base import GenerationSettings
    from reasoningrec.llm.hf import HFBackend
    from reasoningrec.testing import build_tiny_tokenizer

    torch.manual_seed(0)
    config = bench.smoke_config(bench.mistral_7b_config())
    config.vocab_size = 1024
    model = LlamaForCausalLM(config).eval()
    tok = build_tiny_tokenizer()  # its own: HFBackend.from_loaded pads it on the left
    prompts = bench.make_prompts(3)
    fixed = {"min_new_tokens": 6}
    settings = GenerationSettings(temperature=0, max_new_tokens=6)
    runs = {
        engine: HFBackend.from_loaded(model, tok, "m", batch_size=3, generate_kwargs=fixed, engine=engine)
        for engine in ("static", "generate")
    }
    static = [g.text for g in runs["static"].generate(prompts, settings)]
    assert static == [g.text for g in runs["generate"].generate(prompts, settings)]
    assert static == [g.text for g in runs["static"].generate(prompts, settings)]  # cache reused


def test_smoke_run_covers_both_engines(tmp_path):
    argv = ["--smoke", "--model", "mistral-7b-random", "--engines", "static", "generate", "--batch-size", "2"]
    profile = tmp_path / "profile.txt"
    results = bench.main(
        [*argv, "--new-tokens", "3", "--naive-prompts", "1", "--warmup", "0", "--profile", str(profile)]
    )
    assert [r.engine for r in results] == ["static", "generate"]
    assert profile.read_text().count("new tokens") == 2  # a kernel table per engine
    assert all(r.batched_tps > 0 and r.step_ms > 0 for r in results)


def test_arguments_are_validated():
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch-size", "0"])
    assert bench.parse_args(["--batch-size", "2", "--naive-prompts", "9"]).naive_prompts == 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--smoke", "--model", "embedded"])


def _tiny_spm_model(path: Path) -> Path:
    """A small SentencePiece BPE model file (Llama layout: unk, bos, eos, 256 byte pieces, then
    pieces scored by rank), written with the protobuf schema transformers ships."""
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    proto.trainer_spec.model_type, proto.trainer_spec.byte_fallback = 2, True
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = 0, 1, 2
    proto.trainer_spec.pad_id = -1
    proto.normalizer_spec.name, proto.normalizer_spec.add_dummy_prefix = "identity", True
    proto.normalizer_spec.escape_whitespaces, proto.normalizer_spec.remove_extra_whitespaces = True, False
    for piece, kind in [("<unk>", 2), ("<s>", 3), ("</s>", 3)] + [(f"<0x{b:02X}>", 6) for b in range(256)]:
        proto.pieces.add(piece=piece, score=0.0, type=kind)
    merged = [
        "▁▁",
        "▁t",
        "he",
        "▁the",
        "in",
        "▁a",
        "er",
        "▁in",
        "re",
        "on",
        "▁w",
        "ll",
        "▁the▁",
        "ou",
        "▁u",
        "se",
        "▁use",
        "▁user",
        "ike",
        "▁l",
        "▁like",
        "ed",
        "▁liked",
        "ye",
        "▁ye",
        "s",
        "▁yes",
    ]
    chars = sorted(set("".join(merged) + "abcdefghijklmnopqrstuvwxyz:.?,PYN"))
    for rank, piece in enumerate(merged + [c for c in chars if c not in merged]):
        proto.pieces.add(piece=piece, score=-float(rank), type=1)
    path.write_bytes(proto.SerializeToString())
    return path


def test_protobuf_bpe_matches_the_transformers_tokenizer(tmp_path):
    """The sentencepiece-free encoder gives transformers' ids on plain text (byte fallback included)."""
    model = _tiny_spm_model(tmp_path / "tiny.model")
    reference = bench.load_spm_tokenizer(model)
    ours = bench.SpmTokenizer(model, impl="protobuf")
    assert ours.impl == "protobuf" and len(ours) == len(reference)
    texts = [
        "the user liked the",
        "Prediction: Yes",
        "will they like it?",
        "inner rewrite, sound",
        "héllo wörld 🎉",
        "yes",
    ]
    for text in texts:
        expected = reference(text, add_special_tokens=False)["input_ids"]
        assert ours.encode(text, add_special_tokens=False) == expected, text
        assert ours.decode(expected) == text
    # Leading whitespace gets the dummy prefix too, so "▁▁" (ranked first) merges first.
    assert [ours.pieces[i] for i in ours.encode(" the", add_special_tokens=False)] == ["▁▁", "t", "he"]


def test_spm_tokenizer_pads_left_and_parses_control_pieces(tmp_path):
    tok = bench.SpmTokenizer(_tiny_spm_model(tmp_path / "tiny.model"), impl="protobuf")
    tok.chat_template = bench.LLAMA2_TEMPLATE
    tok.pad_token = tok.unk_token
    text = tok.apply_chat_template([{"role": "user", "content": "liked?"}], add_generation_prompt=True)
    assert text.startswith("<s>[INST]")
    ids = tok.encode(text, add_special_tokens=False)
    assert ids[0] == tok.bos_token_id == 1 and ids.count(1) == 1
    assert tok.decode(ids, skip_special_tokens=True) == "[INST] liked? [/INST]"
    long, short = (tok.encode(t, add_special_tokens=False) for t in ["liked yes", "yes"])
    assert len(short) == 1 and len(long) > 1
    batch = tok(["liked yes", "yes"], add_special_tokens=False, padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, len(long))
    assert batch["input_ids"].tolist() == [long, [0] * (len(long) - 1) + short]
    assert batch["attention_mask"][1].tolist() == [0] * (len(long) - 1) + [1]
    assert tok.pad({"input_ids": [[5], [5, 6, 7]]})["attention_mask"] == [[0, 0, 1], [1, 1, 1]]


def test_smoke_run_with_the_forced_fallback_tokenizer(tmp_path):
    """The benchmark end to end with the SentencePiece file read by the protobuf fallback."""
    model = _tiny_spm_model(tmp_path / "tiny.model")
    argv = ["--smoke", "--model", "llama2-7b-random", "--tokenizer", str(model), "--tokenizer-impl", "protobuf"]
    (result,) = bench.main([*argv, "--batch-size", "2", "--new-tokens", "3", "--naive-prompts", "1", "--warmup", "0"])
    assert result.engine == "generate" and result.batched_tps > 0
    assert isinstance(bench.load_tokenizer(str(model), "protobuf"), bench.SpmTokenizer)
    with pytest.raises(ValueError, match="cannot load it"):
        bench.load_tokenizer(str(tmp_path / "missing.model"), "protobuf")
