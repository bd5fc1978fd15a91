"""LoRA fine-tuning with TRL: answer-weighted completion loss, per-epoch validation AUC, early stopping.

A training run (:func:`reasoningrec.training.train.train_adapter`) reads top-down:

1. precision from the hardware (:func:`reasoningrec.models.choose_precision`),
2. records rendered with the base model's chat template into a prompt/completion dataset,
3. an answer-weighted ``SFTTrainer`` (:mod:`~.trainer`; TRL, completion-only loss, optional extra
   weight on the answer token, the loss itself in :mod:`~.loss`) with the arguments of
   :mod:`~.arguments`,
4. a :class:`~.callback.ValidationAUCCallback` that scores the validation records with P(Yes) after
   every epoch, keeps the best adapter (:mod:`~.adapter`) and stops after ``train.patience`` epochs
   without improvement,
5. a :class:`~.callback.TrainingProgressCallback` that shows progress per optimizer step
   (:mod:`reasoningrec.progress`),
6. resume from ``<out_dir>/checkpoints`` after an interruption.

Output folder layout (``out_dir``)::

    adapter/            best adapter: PEFT files + tokenizer + reasoningrec.json
    checkpoints/        Trainer checkpoints (removed after a successful run)
    train.json          summary (history, best epoch, precision, ...), also returned

Importing this package loads nothing heavy; :mod:`~.callback` imports transformers.
"""
