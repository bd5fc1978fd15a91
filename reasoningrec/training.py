"""LoRA fine-tuning with TRL: answer-weighted completion loss, per-epoch validation AUC, early stopping.

Reads top-down:

1. precision from the hardware (:func:`reasoningrec.models.choose_precision`),
2. records rendered with the base model's chat template into a prompt/completion dataset,
3. an :class:`AnswerWeightedSFTTrainer` (TRL ``SFTTrainer``, completion-only loss, optional extra
   weight on the answer token),
4. a :class:`ValidationAUCCallback` that scores the validation records with P(Yes) after every epoch,
   keeps the best adapter and stops after ``train.patience`` epochs without improvement,
5. resume from ``<out_dir>/checkpoints`` after an interruption.

Output folder layout (``out_dir``)::

    adapter/            best adapter: PEFT files + tokenizer + reasoningrec.json
    checkpoints/        Trainer checkpoints (removed after a successful run)
    train.json          summary (history, best epoch, precision, ...), also returned
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reasoningrec import fingerprint
from reasoningrec.chat import count_tokens, render_chat, render_example
from reasoningrec.errors import ConfigError, ReasoningRecError
from reasoningrec.io import read_json, write_json
from reasoningrec.methods import method as method_spec
from reasoningrec.models import ADAPTER_META
from reasoningrec.records import kshot_column, read_records
from reasoningrec.summary import Summary

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
COMPILE_MIN_PARAMS = 1_000_000_000  # train.compile: auto compiles models from this size on
CHECKPOINT_DIR = "checkpoints"
CALLBACK_STATE = "reasoningrec_callback.json"
# The answer token sits right after "Prediction:" at the start of the completion; look no further.
ANSWER_SEARCH_TOKENS = 8


class TrainingError(ReasoningRecError):
    """Training produced an unusable result (e.g. an empty adapter)."""


class TrainResult(Summary):
    """What a training run produced (``train.json``); ``history`` holds one dict per epoch
    (epoch, train_loss, valid_auc, improved)."""

    adapter_dir: Path
    best_epoch: int
    best_valid_auc: float | None
    history: list[dict[str, Any]] = []
    precision: str = "fp32"
    epochs_run: int = 0
    stopped_early: bool = False
    train_records: int = 0
    valid_records: int = 0
    shortened_overlong: int = 0
    seconds: float = 0.0
    meta: dict[str, Any] = {}
    fingerprint: str | None = None  # of the settings and records it was trained with (training_fingerprint)


# ---------------------------------------------------------------------------------------------
# Answer-weighted completion loss
# ---------------------------------------------------------------------------------------------


def answer_token_weights(shifted_labels, yes_id: int, no_id: int, weight: float):
    """Per-token loss weights aligned with next-token labels: 0 on ignored (-100) positions, 1 on
    completion tokens, ``weight`` on the answer token (the first " Yes"/" No" among the first
    :data:`ANSWER_SEARCH_TOKENS` completion tokens of each row)."""
    import torch

    valid = shifted_labels != -100
    rank = valid.long().cumsum(dim=1) - 1
    candidate = valid & ((shifted_labels == yes_id) | (shifted_labels == no_id)) & (rank < ANSWER_SEARCH_TOKENS)
    first = candidate & (candidate.long().cumsum(dim=1) == 1)
    return valid.to(torch.float32).masked_fill(first, float(weight))


def weighted_completion_loss(log_probs, shifted_labels, yes_id: int, no_id: int, weight: float, num_tokens=None):
    """sum_i w_i * CE_i / N, with N the number of completion tokens (``num_tokens`` when the Trainer
    accumulates gradients over several micro-batches). ``weight == 1`` is exactly the plain loss."""
    import torch

    weights = answer_token_weights(shifted_labels, yes_id, no_id, weight).to(log_probs.dtype)
    count = (shifted_labels != -100).sum() if num_tokens is None else num_tokens
    return -(log_probs * weights).sum() / torch.as_tensor(count, device=log_probs.device).clamp(min=1)


def _sft_trainer_class():
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
                outputs.log_probs, inputs["labels"][:, 1:], *self.answer_ids, self.answer_loss_weight, num_items_in_batch
            )
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            if self.model.training and "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum().item())
                self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return loss

    return AnswerWeightedSFTTrainer


# ---------------------------------------------------------------------------------------------
# Per-epoch validation AUC, best adapter, early stopping
# ---------------------------------------------------------------------------------------------


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class ValidationAUCCallback(_callback_base()):
    """After each epoch: P(Yes) on the validation prompts -> AUC; save the adapter when it improves;
    stop after ``patience`` epochs without improvement. ``scorer(model) -> scores`` and
    ``save_best(model, epoch, auc)`` are injected so the logic is testable without a Trainer.
    State survives resume through a JSON file written into each checkpoint."""

    def __init__(
        self,
        scorer: Callable[[Any], np.ndarray],
        labels: Sequence[int],
        patience: int,
        save_best: Callable[[Any, int, float], None],
    ):
        self.scorer, self.labels, self.patience, self.save_best = scorer, list(labels), patience, save_best
        self.best_auc: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0
        self.history: list[dict] = []
        self._losses: list[float] = []

    # Trainer hooks -------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._losses.append(float(logs["loss"]))

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        epoch = len(self.history) + 1
        self.end_epoch(model, epoch, control)
        return control

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            write_json(folder / CALLBACK_STATE, self.state_dict())
        return control

    # Logic ----------------------------------------------------------------------------------
    def end_epoch(self, model, epoch: int, control) -> float:
        from reasoningrec.metrics import auc

        started = time.perf_counter()
        valid_auc = auc(self.labels, self.scorer(model))
        train_loss = float(np.mean(self._losses)) if self._losses else None
        self._losses = []
        improved = not math.isnan(valid_auc) and (self.best_auc is None or valid_auc > self.best_auc)
        if improved or self.best_auc is None:  # epoch 1 always gives a first adapter, even with nan AUC
            self.best_auc, self.best_epoch, self.bad_epochs = valid_auc, epoch, 0
            self.save_best(model, epoch, valid_auc)
        else:
            self.bad_epochs += 1
        self.history.append(
            {"epoch": epoch, "train_loss": train_loss, "valid_auc": valid_auc, "improved": bool(improved)}
        )
        log.info(
            "epoch %d: train loss %s, valid AUC %.4f%s (scored in %.1f s)",
            epoch, "n/a" if train_loss is None else f"{train_loss:.4f}", valid_auc,
            " (best)" if improved else f", {self.bad_epochs} without improvement", time.perf_counter() - started,
        )
        if self.bad_epochs >= self.patience:
            log.info("early stopping: %d epochs without a better validation AUC", self.bad_epochs)
            control.should_training_stop = True
        return valid_auc

    def state_dict(self) -> dict:
        return {
            "best_auc": self.best_auc, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "history": self.history,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_auc, self.best_epoch = state["best_auc"], state["best_epoch"]
        self.bad_epochs, self.history = state["bad_epochs"], list(state["history"])

    @property
    def stopped_early(self) -> bool:
        return self.bad_epochs >= self.patience


# ---------------------------------------------------------------------------------------------
# Adapter files
# ---------------------------------------------------------------------------------------------


def save_adapter(model, tokenizer, adapter_dir: Path, meta: dict) -> Path:
    """Write adapter + tokenizer + ``reasoningrec.json`` atomically (temp folder, then rename),
    refusing an adapter whose LoRA B matrices are all zero (nothing was learned or saved)."""
    adapter_dir = Path(adapter_dir)
    tmp = adapter_dir.with_name(f".{adapter_dir.name}.tmp")
    old = adapter_dir.with_name(f".{adapter_dir.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    check_adapter_not_empty(tmp)
    write_json(tmp / ADAPTER_META, meta)
    shutil.rmtree(old, ignore_errors=True)
    if adapter_dir.exists():
        os.replace(adapter_dir, old)
    os.replace(tmp, adapter_dir)
    shutil.rmtree(old, ignore_errors=True)
    return adapter_dir


def check_adapter_not_empty(adapter_dir: Path) -> int:
    """Number of LoRA B tensors with a non-zero entry; raises :class:`TrainingError` when there are none."""
    from safetensors import safe_open

    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.is_file():
        raise TrainingError(f"{path}: adapter weights were not written")
    nonzero = total = 0
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            if "lora_B" in key:
                total += 1
                nonzero += bool(handle.get_tensor(key).abs().sum() > 0)
    if nonzero == 0:
        raise TrainingError(f"{path}: adapter is empty ({total} LoRA B tensors, all zero): nothing would be applied")
    return nonzero


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _records_frame(records) -> pd.DataFrame:
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    missing = {"prompt_text", "completion_text", "label"} - set(frame.columns)
    if missing:
        raise ConfigError(f"training records lack columns {sorted(missing)}")
    if frame.empty:
        raise ConfigError("no training records (check records.k_shots and the records stage output)")
    return frame.reset_index(drop=True)


RECORD_COLUMNS = ("user_id", "prompt_text", "completion_text", "label")


def training_fingerprint(cfg, base_model: str, seed: int, max_length: int,
                         train: pd.DataFrame, valid: pd.DataFrame) -> tuple[str, dict]:
    """(fingerprint, the settings it digests) of one training: config, base model, seed and the records."""
    settings = {
        "train": cfg.model_dump(mode="json"), "base_model": str(base_model), "seed": int(seed),
        "max_length": int(max_length),
        "train_records": fingerprint.frame_digest(train, RECORD_COLUMNS),
        "valid_records": fingerprint.frame_digest(valid, RECORD_COLUMNS),
    }
    return fingerprint.digest(settings), settings


def wants_compile(setting, cuda: bool, n_params: int) -> bool:
    """Whether to ``torch.compile`` the model: never on CPU; ``auto`` = for models of at least
    :data:`COMPILE_MIN_PARAMS` parameters."""
    if not cuda:
        return False
    return n_params >= COMPILE_MIN_PARAMS if setting == "auto" else bool(setting)


def sft_arguments(cfg, output_dir: str | Path, *, cuda: bool, precision: str, max_length: int, seed: int,
                  compile_model: bool | None = None, **overrides):
    """The ``SFTConfig`` of a training run (``cfg``: a :class:`reasoningrec.config.TrainConfig`):
    completion-only loss, a checkpoint per epoch, the settings of ``cfg``; ``overrides`` win (the
    training benchmark sets ``max_steps`` and turns saving off). ``compile_model``: the resolved
    ``cfg.compile`` (:func:`wants_compile`); None = ``cfg.compile is True``."""
    import torch
    from trl import SFTConfig

    if compile_model is None:
        compile_model = cfg.compile is True

    settings = dict(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        warmup_steps=0,
        completion_only_loss=True,
        max_length=max_length,
        save_strategy="epoch",
        save_total_limit=1,
        eval_strategy="no",
        logging_strategy="steps",
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=precision in {"bf16", "nf4", "int8"} and cuda and torch.cuda.is_bf16_supported(),
        fp16=False,
        # Activation checkpointing trades ~40% of throughput for memory; on CPU it only costs time.
        gradient_checkpointing=cuda and cfg.gradient_checkpointing,
        torch_compile=cuda and compile_model,
        seed=seed,
        data_seed=seed,
        dataset_num_proc=None,
        restore_callback_states_from_checkpoint=False,
    )
    return SFTConfig(**{**settings, **overrides})


def lora_config(cfg):
    """The PEFT ``LoraConfig`` of ``cfg`` (r, alpha, dropout, target modules)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def train_adapter(
    base_model: str,
    train_records: pd.DataFrame | Sequence[dict],
    valid_records: pd.DataFrame | Sequence[dict],
    cfg,
    out_dir: str | Path,
    *,
    max_length: int = 2048,
    seed: int | None = None,
    meta: dict | None = None,
    score_batch_size: int = 8,
    keep_checkpoints: bool = False,
) -> TrainResult:
    """Fine-tune a LoRA adapter on records (``prompt_text``, ``completion_text``, ``label``).

    ``cfg`` is a :class:`reasoningrec.config.TrainConfig`. ``base_model`` is "embedded", a hub id or a
    local folder (recorded as given in the adapter metadata). The best adapter by validation AUC ends
    up in ``<out_dir>/adapter``. Re-running after an interruption resumes from the last checkpoint.
    """
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from reasoningrec.answer import answer_token_ids
    from reasoningrec.models import choose_precision, load_causal_lm, load_tokenizer, resolve_model
    from reasoningrec.scoring import score_prompts

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = cfg.seed if seed is None else seed
    set_seed(seed)
    train = _records_frame(train_records)
    valid = _records_frame(valid_records)

    # 1. Precision and model ------------------------------------------------------------------
    cuda = torch.cuda.is_available()
    precision = choose_precision(cfg.precision)
    log.info("training precision: %s (%s)", precision, torch.cuda.get_device_name() if cuda else "CPU")
    resolved = resolve_model(base_model)
    tokenizer = load_tokenizer(resolved)
    answer_ids = answer_token_ids(tokenizer)
    model = load_causal_lm(resolved, precision, for_training=True)

    # 2. Records -> prompt/completion dataset ---------------------------------------------------
    pairs = [render_example(tokenizer, p, c) for p, c in zip(train["prompt_text"], train["completion_text"], strict=True)]
    overlong = sum(count_tokens(tokenizer, p, c) > max_length for p, c in pairs)
    if overlong:
        log.warning("%d training records exceed max_length=%d tokens for this tokenizer: their completions "
                    "will be cut (rebuild records with this base model)", overlong, max_length)
    dataset = Dataset.from_dict({"prompt": [p for p, _ in pairs], "completion": [c for _, c in pairs]})
    valid_prompts = [render_chat(tokenizer, p) for p in valid["prompt_text"]]
    valid_labels = valid["label"].astype(int).tolist()

    # 3. Best adapter + early stopping ----------------------------------------------------------
    adapter_meta = {
        **(meta or {}),
        "base_model": base_model,
        "resolved_base_model": str(resolved),
        "k_shots": (meta or {}).get("k_shots"),
        "seed": seed,
        "precision": precision,
        "answer_token_ids": list(answer_ids),
        "answer_loss_weight": cfg.answer_loss_weight,
        "max_length": max_length,
        "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
                 "target_modules": list(cfg.target_modules)},
    }

    def save_best(peft_model, epoch: int, valid_auc: float) -> None:
        save_adapter(peft_model, tokenizer, out_dir / ADAPTER_DIR,
                     {**adapter_meta, "best_epoch": epoch, "valid_auc": valid_auc})

    callback = ValidationAUCCallback(
        scorer=lambda m: score_prompts(m, tokenizer, valid_prompts, score_batch_size, answer_ids=answer_ids),
        labels=valid_labels,
        patience=cfg.patience,
        save_best=save_best,
    )

    # 4. Trainer --------------------------------------------------------------------------------
    checkpoints = out_dir / CHECKPOINT_DIR
    # Checkpoints of other settings or other records must not be resumed: they are moved aside.
    trained_with = training_fingerprint(cfg, base_model, seed, max_length, train, valid)
    fingerprint.claim(checkpoints, *trained_with)
    compile_model = wants_compile(cfg.compile, cuda, sum(p.numel() for p in model.parameters()))
    args = sft_arguments(cfg, checkpoints, cuda=cuda, precision=precision, max_length=max_length, seed=seed,
                         compile_model=compile_model)
    lora = lora_config(cfg)
    trainer = _sft_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[callback],
        answer_ids=answer_ids,
        answer_loss_weight=cfg.answer_loss_weight,
    )

    # disable_tqdm makes transformers print every logged dict; our callback logs one line per epoch.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)

    # 5. Train (resuming when a checkpoint exists) ----------------------------------------------
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last and (Path(last) / CALLBACK_STATE).is_file():
        callback.load_state_dict(read_json(Path(last) / CALLBACK_STATE))
        log.info("resuming from %s (epoch %d done)", last, len(callback.history))
    elif last:
        last = None  # a checkpoint without our state predates this code path: start over
    if callback.stopped_early or len(callback.history) >= cfg.epochs:
        log.info("training already finished in %s", checkpoints)
    else:
        trainer.train(resume_from_checkpoint=last)
    if not (out_dir / ADAPTER_DIR / ADAPTER_META).is_file():
        raise TrainingError(f"{out_dir / ADAPTER_DIR}: no adapter was saved (did any epoch finish?)")
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)

    result = TrainResult(
        adapter_dir=out_dir / ADAPTER_DIR,
        best_epoch=callback.best_epoch,
        best_valid_auc=None if callback.best_auc is None or math.isnan(callback.best_auc) else float(callback.best_auc),
        history=callback.history,
        precision=precision,
        epochs_run=len(callback.history),
        stopped_early=callback.stopped_early,
        train_records=len(train),
        valid_records=len(valid),
        shortened_overlong=int(overlong),
        seconds=round(time.perf_counter() - started, 1),
        meta=adapter_meta,
        fingerprint=trained_with[0],
    )
    return result


def run_train(params, dataset: str, method: str, k_shots: int, seed: int, out_dir: str | Path | None = None) -> TrainResult:
    """Train one adapter for (dataset, method, K, seed) from the dataset's ``records.parquet``.

    ``method`` (a fine-tuned method of :mod:`reasoningrec.methods`) picks the record variant.
    Default ``out_dir``: ``<paths.models_dir>/<dataset>/<method>-k<K>-s<seed>``. Writes and returns
    ``train.json``.
    """
    spec = method_spec(method)
    if not spec.fine_tuned:
        from reasoningrec.methods import names

        raise ConfigError(f"method {method!r} is not trained with LoRA (trainable: {', '.join(names(fine_tuned=True))})")
    records_path = params.work_dir(dataset) / "records.parquet"
    records = read_records(records_path, spec.variant)
    column = kshot_column(k_shots)
    if column not in records.columns:
        raise ConfigError(f"{records_path}: no {k_shots}-shot set (records.k_shots builds {params.records.k_shots})")
    train = records[(records["split"] == "train") & records[column]]
    valid = records[records["split"] == "valid"]
    out_dir = Path(out_dir) if out_dir is not None else params.paths.models_dir / dataset / f"{method}-k{k_shots}-s{seed}"
    done = finished_training(out_dir, training_fingerprint(
        params.train, params.train.base_model, seed, params.records.max_length, _records_frame(train),
        _records_frame(valid))[0])
    if done is not None:
        log.info("%s: trained already with these settings and records: the adapter is reused", out_dir)
        return done
    meta = {"dataset": dataset, "method": method, "variant": spec.variant, "k_shots": k_shots}
    result = train_adapter(
        params.train.base_model, train, valid, params.train, out_dir,
        max_length=params.records.max_length, seed=seed, meta=meta,
    )
    result.write(out_dir / "train.json")
    return result


def finished_training(out_dir: Path, fingerprint_now: str) -> TrainResult | None:
    """The training summary of ``out_dir`` when it finished with the same settings and records (its
    adapter on disk): training is never redone for a change that does not touch it."""
    path = Path(out_dir) / "train.json"
    if not path.is_file():
        return None
    try:
        result = TrainResult.read(path)
    except ReasoningRecError:
        return None
    if result.fingerprint != fingerprint_now or not (Path(result.adapter_dir) / ADAPTER_META).is_file():
        return None
    return result
