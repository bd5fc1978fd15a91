"""LoRA training: completion-only masking, answer weighting, planted signal, early stopping, guards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reasoningrec.config import TrainConfig
from reasoningrec.training import (
    TrainingError,
    ValidationAUCCallback,
    answer_token_weights,
    check_adapter_not_empty,
    train_adapter,
    weighted_completion_loss,
)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    from reasoningrec.testing import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny"))


def _planted(n: int, reasoning: bool = False) -> pd.DataFrame:
    """The target title decides the label: 'Toy Story' -> Yes, 'Heat' -> No."""
    rows = []
    for i in range(n):
        label = i % 2
        title = "Toy Story (1995)" if label else "Heat (1995)"
        completion = f"Prediction: {'Yes' if label else 'No'}"
        if reasoning:
            completion += "\nbecause the user enjoyed similar movies"
        rows.append({"prompt_text": f"Will the user like the target item {title}?", "completion_text": completion,
                     "label": label})
    return pd.DataFrame(rows)


def test_answer_weights_mark_only_the_first_answer_token():
    import torch

    yes, no = 7, 8
    labels = torch.tensor([
        [-100, -100, 5, 6, 7, 9, 8, 7],   # prompt, "Prediction", ":", Yes, ..., later yes/no tokens in reasoning
        [-100, 5, 6, 8, 9, -100, -100, -100],  # No, then padding
    ])
    w = answer_token_weights(labels, yes, no, 10.0)
    assert w.tolist() == [[0, 0, 1, 1, 10, 1, 1, 1], [0, 1, 1, 10, 1, 0, 0, 0]]


def test_weighted_loss_matches_a_hand_computation():
    import torch

    labels = torch.tensor([[-100, 5, 7, 9], [-100, -100, 5, 8]])
    log_probs = torch.tensor([[0.0, -1.0, -2.0, -0.5], [0.0, 0.0, -1.5, -3.0]])
    plain = weighted_completion_loss(log_probs, labels, 7, 8, 1.0)
    assert plain.item() == pytest.approx((1.0 + 2.0 + 0.5 + 1.5 + 3.0) / 5)
    weighted = weighted_completion_loss(log_probs, labels, 7, 8, 4.0)
    assert weighted.item() == pytest.approx((1.0 + 4 * 2.0 + 0.5 + 1.5 + 4 * 3.0) / 5)
    assert weighted_completion_loss(log_probs, labels, 7, 8, 4.0, num_tokens=10).item() == pytest.approx(
        (1.0 + 8.0 + 0.5 + 1.5 + 12.0) / 10
    )


@pytest.fixture(scope="module")
def trainer_setup(tiny_path):
    """A real SFT trainer on the tiny model, its prepared dataset and one collated batch."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from reasoningrec.answer import answer_token_ids
    from reasoningrec.chat import render_example
    from reasoningrec.training import _sft_trainer_class

    tok = AutoTokenizer.from_pretrained(tiny_path)
    records = _planted(4, reasoning=True)
    pairs = [render_example(tok, p, c) for p, c in zip(records.prompt_text, records.completion_text, strict=True)]
    data = Dataset.from_dict({"prompt": [p for p, _ in pairs], "completion": [c for _, c in pairs]})
    args = SFTConfig(output_dir="/tmp/unused", completion_only_loss=True, max_length=256, report_to=[],
                     use_cpu=True, bf16=False, gradient_checkpointing=False, per_device_train_batch_size=4)
    torch.manual_seed(0)
    trainer = _sft_trainer_class()(
        model=AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32), args=args, train_dataset=data,
        processing_class=tok, peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        answer_ids=answer_token_ids(tok), answer_loss_weight=5.0,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, tok, pairs, batch


def test_completion_only_masking(trainer_setup):
    trainer, tok, pairs, _ = trainer_setup
    for example, (prompt, completion) in zip(trainer.train_dataset, pairs, strict=True):
        n_prompt = len(tok(prompt)["input_ids"])
        labels = example["labels"]
        assert all(label == -100 for label in labels[:n_prompt])
        assert all(label != -100 for label in labels[n_prompt:])
        assert tok.decode(labels[n_prompt:]) == completion


def test_trainer_loss_is_the_hand_weighted_cross_entropy(trainer_setup):
    import torch
    import torch.nn.functional as F

    trainer, tok, _, batch = trainer_setup
    yes, no = trainer.answer_ids
    model = trainer.model
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch)).item()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels.reshape(-1), reduction="none",
                         ignore_index=-100).view(labels.shape)
    weights = (labels != -100).float()
    for row in range(labels.size(0)):  # by hand: the answer is the 3rd completion token here
        first = int((labels[row] != -100).nonzero()[0])
        assert int(labels[row, first + 2]) in (yes, no)
        weights[row, first + 2] = 5.0
    expected = (ce * weights).sum() / (labels != -100).sum()
    assert loss == pytest.approx(expected.item(), rel=1e-4)
    trainer.answer_loss_weight = 1.0
    with torch.no_grad():
        plain = trainer.compute_loss(model, dict(batch)).item()
    trainer.answer_loss_weight = 5.0
    assert plain == pytest.approx((ce.sum() / (labels != -100).sum()).item(), rel=1e-4)
    assert loss > plain


class _Control:
    should_training_stop = False


def test_early_stopping_after_patience_epochs_without_improvement():
    script = iter([0.60, 0.70, 0.65, 0.70, 0.69, 0.90])
    saved = []
    callback = ValidationAUCCallback(
        scorer=lambda model: None, labels=[0, 1], patience=3, save_best=lambda m, e, a: saved.append((e, a))
    )
    import reasoningrec.metrics as metrics

    original = metrics.auc
    metrics.auc = lambda labels, scores: next(script)
    try:
        control = _Control()
        for epoch in range(1, 7):
            callback.end_epoch(None, epoch, control)
            if control.should_training_stop:
                break
    finally:
        metrics.auc = original
    assert epoch == 5 and callback.stopped_early  # 0.65, 0.70 (a tie), 0.69: three without improvement
    assert saved == [(1, 0.60), (2, 0.70)] and callback.best_epoch == 2
    state = callback.state_dict()
    restored = ValidationAUCCallback(lambda m: None, [0, 1], 3, lambda *a: None)
    restored.load_state_dict(state)
    assert restored.history == callback.history and restored.best_auc == 0.70


def test_empty_adapter_is_refused(tiny_path, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasoningrec.training import save_adapter

    base = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))  # B starts at zero
    with pytest.raises(TrainingError, match="empty"):
        save_adapter(peft, AutoTokenizer.from_pretrained(tiny_path), tmp_path / "adapter", {"base_model": "x"})
    assert not (tmp_path / "adapter").exists()


def test_training_learns_a_planted_signal_and_resumes(tiny_path, tmp_path):
    from reasoningrec.chat import render_chat
    from reasoningrec.io import read_json
    from reasoningrec.models import load_adapter
    from reasoningrec.scoring import score_prompts

    cfg = TrainConfig(epochs=4, learning_rate=3e-2, batch_size=8, patience=4, answer_loss_weight=5.0,
                      target_modules=["q_proj", "v_proj", "o_proj"])
    valid = _planted(8)
    result = train_adapter(str(tiny_path), _planted(32), valid, cfg, tmp_path / "run", max_length=128,
                           seed=0, meta={"dataset": "planted", "method": "tallrec", "k_shots": 32},
                           keep_checkpoints=True)
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert result.best_valid_auc == 1.0
    assert check_adapter_not_empty(result.adapter_dir) > 0
    meta = read_json(result.adapter_dir / "reasoningrec.json")
    assert meta["best_epoch"] == result.best_epoch and meta["k_shots"] == 32 and meta["method"] == "tallrec"
    model, tok, _ = load_adapter(result.adapter_dir, device="cpu")
    scores = score_prompts(model, tok, [render_chat(tok, p) for p in valid.prompt_text])
    assert scores[valid.label == 1].min() > scores[valid.label == 0].max()
    # A second call finds the finished checkpoint and does not train again.
    again = train_adapter(str(tiny_path), _planted(32), valid, cfg, tmp_path / "run", max_length=128, seed=0,
                          keep_checkpoints=True)
    assert again.history == result.history and again.epochs_run == 4
    # Other settings do not resume those checkpoints: they are moved aside and training starts over.
    other = cfg.model_copy(update={"epochs": 1})
    fresh = train_adapter(str(tiny_path), _planted(32), valid, other, tmp_path / "run", max_length=128, seed=0,
                          keep_checkpoints=True)
    assert fresh.epochs_run == 1 and len(fresh.history) == 1
    (parked,) = (tmp_path / "run" / ".superseded").iterdir()
    assert parked.name.startswith("checkpoints-") and any(parked.glob("checkpoint-*"))


@pytest.mark.slow
def test_smollm2_end_to_end(tmp_path):
    """Real SmolLM2-135M-Instruct: two epochs on a few records, then scores and an explanation."""
    from reasoningrec.chat import render_chat
    from reasoningrec.models import load_adapter
    from reasoningrec.scoring import generate_explanations, score_prompts

    cfg = TrainConfig(epochs=2, learning_rate=1e-3, batch_size=4, patience=2, answer_loss_weight=2.0)
    result = train_adapter("embedded", _planted(8, reasoning=True), _planted(4), cfg, tmp_path, max_length=256)
    assert len(result.history) == 2 and not np.isnan(result.best_valid_auc)
    model, tok, meta = load_adapter(result.adapter_dir)
    assert meta["base_model"] == "embedded"
    prompts = [render_chat(tok, p) for p in _planted(4).prompt_text]
    scores = score_prompts(model, tok, prompts)
    assert ((scores > 0) & (scores < 1)).all()
    assert len(generate_explanations(model, tok, prompts[:2], max_new_tokens=16)) == 2


def test_compile_setting_resolves_by_device_and_model_size():
    from reasoningrec.config import TrainConfig
    from reasoningrec.training import COMPILE_MIN_PARAMS, wants_compile

    assert TrainConfig().compile == "auto"
    assert wants_compile("auto", True, 7_000_000_000) and not wants_compile("auto", True, 135_000_000)
    assert not wants_compile("auto", False, 7_000_000_000) and not wants_compile(True, False, COMPILE_MIN_PARAMS)
    assert wants_compile(True, True, 1) and not wants_compile(False, True, COMPILE_MIN_PARAMS)
