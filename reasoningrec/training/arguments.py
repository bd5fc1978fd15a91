"""The settings of a training run: TRL's ``SFTConfig``, PEFT's ``LoraConfig``, whether to compile."""

from __future__ import annotations

from pathlib import Path

COMPILE_MIN_PARAMS = 1_000_000_000  # train.compile: auto compiles models from this size on


def wants_compile(setting, cuda: bool, n_params: int) -> bool:
    """Whether to ``torch.compile`` the model: never on CPU; ``auto`` = for models of at least
    :data:`COMPILE_MIN_PARAMS` parameters."""
    if not cuda:
        return False
    return n_params >= COMPILE_MIN_PARAMS if setting == "auto" else bool(setting)


def sft_arguments(
    cfg,
    output_dir: str | Path,
    *,
    cuda: bool,
    precision: str,
    max_length: int,
    seed: int,
    compile_model: bool | None = None,
    **overrides,
):
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
