"""The answer-weighted SFT trainer: completion-only masking and its loss on a real batch."""

from __future__ import annotations

import pytest
from training_data import planted


@pytest.fixture(scope="module")
def trainer_setup(tiny_model_dir):
    """A real SFT trainer on the tiny model, its prepared dataset and one collated batch."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from reasoningrec.answer import answer_token_ids
    from reasoningrec.chat import render_example
    from reasoningrec.training.trainer import sft_trainer_class

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = planted(4, reasoning=True)
    pairs = [render_example(tok, p, c) for p, c in zip(records.prompt_text, records.completion_text, strict=True)]
    data = Dataset.from_dict({"prompt": [p for p, _ in pairs], "completion": [c for _, c in pairs]})
    args = SFTConfig(
        output_dir="/tmp/unused",
        completion_only_loss=True,
        max_length=256,
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        per_device_train_batch_size=4,
    )
    torch.manual_seed(0)
    trainer = sft_trainer_class()(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
        args=args,
        train_dataset=data,
        processing_class=tok,
        peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        answer_ids=answer_token_ids(tok),
        answer_loss_weight=5.0,
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
    ce = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), labels.reshape(-1), reduction="none", ignore_index=-100
    ).view(labels.shape)
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
