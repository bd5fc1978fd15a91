"""TRL's ``SFTTrainer`` with the answer-weighted completion loss (:mod:`reasoningrec.training.loss`)."""

from __future__ import annotations

from reasoningrec.training.loss import weighted_completion_loss


def sft_trainer_class():
    """The ``AnswerWeightedSFTTrainer`` class (built on first call: it imports TRL)."""
    from trl import SFTTrainer

    class AnswerWeightedSFTTrainer(SFTTrainer):
        """``SFTTrainer`` whose completion loss weighs the answer token ``answer_loss_weight`` times."""

        def __init__(self, *args, answer_ids: tuple[int, int], answer_loss_weight: float = 1.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.answer_ids = answer_ids
            self.answer_loss_weight = float(answer_loss_weight)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.answer_loss_weight == 1.0 or return_outputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            loss = weighted_completion_loss(
                outputs.log_probs,
                inputs["labels"][:, 1:],
                *self.answer_ids,
                self.answer_loss_weight,
                num_items_in_batch,
            )
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            if self.model.training and "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum().item())
                self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return loss

    return AnswerWeightedSFTTrainer
