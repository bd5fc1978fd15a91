"""One training run: records in, the best adapter by validation AUC out; the stage entry ``run_train``."""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from reasoningrec import fingerprint
from reasoningrec.chat import count_tokens, render_chat, render_example
from reasoningrec.errors import ConfigError, ReasoningRecError
from reasoningrec.io import read_json
from reasoningrec.methods import method as method_spec
from reasoningrec.models import ADAPTER_META
from reasoningrec.records.kshot import kshot_column
from reasoningrec.records.stage import read_records
from reasoningrec.summary import Summary
from reasoningrec.training.adapter import ADAPTER_DIR, TrainingError, save_adapter
from reasoningrec.training.arguments import lora_config, sft_arguments, wants_compile
from reasoningrec.training.callback import CALLBACK_STATE, TrainingProgressCallback, ValidationAUCCallback
from reasoningrec.training.distributed import (
    current_comm,
    join_process_group,
    on_main,
    order_followers,
    per_process_batch,
    sharded_scorer,
    world_from_env,
)
from reasoningrec.training.launch import launch_training, resolve_processes
from reasoningrec.training.trainer import sft_trainer_class

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


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
    processes: int = 1  # data-parallel processes it was trained on (train.processes)
    # P(Yes) of the validation records (in their order) by the best epoch's adapter, scored in
    # batches of score_batch_size at `precision` (None: not kept, e.g. a train.json of an older version).
    valid_scores: list[float] | None = None
    score_batch_size: int = 8


def _records_frame(records) -> pd.DataFrame:
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    missing = {"prompt_text", "completion_text", "label"} - set(frame.columns)
    if missing:
        raise ConfigError(f"training records lack columns {sorted(missing)}")
    if frame.empty:
        raise ConfigError("no training records (check records.k_shots and the records stage output)")
    return frame.reset_index(drop=True)


RECORD_COLUMNS = ("user_id", "prompt_text", "completion_text", "label")


def training_fingerprint(
    cfg, base_model: str, seed: int, max_length: int, train: pd.DataFrame, valid: pd.DataFrame
) -> tuple[str, dict]:
    """(fingerprint, the settings it digests) of one training: config, base model, seed and the records.
    ``train.processes`` is left out: it spreads the same global batch over more devices."""
    settings = {
        "train": cfg.model_dump(mode="json", exclude={"processes"}),
        "base_model": str(base_model),
        "seed": int(seed),
        "max_length": int(max_length),
        "train_records": fingerprint.frame_digest(train, RECORD_COLUMNS),
        "valid_records": fingerprint.frame_digest(valid, RECORD_COLUMNS),
    }
    return fingerprint.digest(settings), settings


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

    Under a launcher of several processes (``torchrun``, ``accelerate launch``) every process calls
    this: the Trainer shards the batches, the validation prompts are scored in shards and gathered,
    rank 0 decides and writes (:mod:`reasoningrec.training.distributed`); all return the same result.
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

    # 1. Processes, precision and model -------------------------------------------------------
    cuda = torch.cuda.is_available()
    world = world_from_env()
    comm = join_process_group(world, cuda)
    micro_batch, accumulation = per_process_batch(cfg.batch_size, cfg.grad_accum, world.size)
    precision = choose_precision(cfg.precision)
    log.info(
        "training precision: %s (%s)%s",
        precision,
        torch.cuda.get_device_name() if cuda else "CPU",
        f", process {world.rank} of {world.size}" if world.size > 1 else "",
    )
    resolved = resolve_model(base_model)
    tokenizer = load_tokenizer(resolved)
    answer_ids = answer_token_ids(tokenizer)
    model = load_causal_lm(
        resolved, precision, for_training=True, device=f"cuda:{world.local_rank}" if cuda and world.size > 1 else None
    )

    # 2. Records -> prompt/completion dataset ---------------------------------------------------
    pairs = [
        render_example(tokenizer, p, c) for p, c in zip(train["prompt_text"], train["completion_text"], strict=True)
    ]
    overlong = sum(count_tokens(tokenizer, p, c) > max_length for p, c in pairs)
    if overlong:
        log.warning(
            "%d training records exceed max_length=%d tokens for this tokenizer: their completions "
            "will be cut (rebuild records with this base model)",
            overlong,
            max_length,
        )
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
        "processes": world.size,
        "lora": {
            "r": cfg.lora_r,
            "alpha": cfg.lora_alpha,
            "dropout": cfg.lora_dropout,
            "target_modules": list(cfg.target_modules),
        },
    }

    def save_best(peft_model, epoch: int, valid_auc: float) -> None:
        save_adapter(
            peft_model, tokenizer, out_dir / ADAPTER_DIR, {**adapter_meta, "best_epoch": epoch, "valid_auc": valid_auc}
        )

    shown = TrainingProgressCallback("train" if comm.rank == 0 else None)  # one display: rank 0
    callback = ValidationAUCCallback(
        scorer=sharded_scorer(
            lambda m, prompts: score_prompts(m, tokenizer, prompts, score_batch_size, answer_ids=answer_ids),
            valid_prompts,
            comm,
        ),
        labels=valid_labels,
        patience=cfg.patience,
        save_best=save_best,
        comm=comm,
    )

    # 4. Trainer --------------------------------------------------------------------------------
    checkpoints = out_dir / CHECKPOINT_DIR
    # Checkpoints of other settings or other records must not be resumed: they are moved aside.
    trained_with = training_fingerprint(cfg, base_model, seed, max_length, train, valid)
    on_main(comm, lambda: fingerprint.claim(checkpoints, *trained_with))
    compile_model = wants_compile(cfg.compile, cuda, sum(p.numel() for p in model.parameters()))
    # The same global batch on every number of processes; all LoRA weights get a gradient each step.
    parallel = {"ddp_find_unused_parameters": False} if world.size > 1 else {}
    args = sft_arguments(
        cfg,
        checkpoints,
        cuda=cuda,
        precision=precision,
        max_length=max_length,
        seed=seed,
        compile_model=compile_model,
        per_device_train_batch_size=micro_batch,
        gradient_accumulation_steps=accumulation,
        **parallel,
    )
    lora = lora_config(cfg)
    trainer = sft_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[callback, shown],
        answer_ids=answer_ids,
        answer_loss_weight=cfg.answer_loss_weight,
    )

    # disable_tqdm makes transformers print every logged dict; our callbacks show steps and epochs instead.
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
        try:
            trainer.train(resume_from_checkpoint=last)
        except BaseException:
            shown.close(failed=True)
            raise
    comm.barrier()
    if not (out_dir / ADAPTER_DIR / ADAPTER_META).is_file():
        raise TrainingError(f"{out_dir / ADAPTER_DIR}: no adapter was saved (did any epoch finish?)")
    if not keep_checkpoints:
        on_main(comm, lambda: shutil.rmtree(checkpoints, ignore_errors=True))

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
        processes=world.size,
        valid_scores=callback.best_scores,
        score_batch_size=score_batch_size,
    )
    return result


def run_train(
    params, dataset: str, method: str, k_shots: int, seed: int, out_dir: str | Path | None = None
) -> TrainResult:
    """Train one adapter for (dataset, method, K, seed) from the dataset's ``records.parquet``.

    ``method`` (a fine-tuned method of :mod:`reasoningrec.methods`) picks the record variant.
    Default ``out_dir``: ``<paths.models_dir>/<dataset>/<method>-k<K>-s<seed>``. Writes and returns
    ``train.json``. With ``train.processes`` above 1, a plain process launches the training on that
    many processes (:mod:`reasoningrec.training.launch`) and returns what they wrote; a process of
    such a launch trains its share, and rank 0 alone writes ``train.json``.
    """
    spec = method_spec(method)
    if not spec.fine_tuned:
        from reasoningrec.methods import names

        raise ConfigError(
            f"method {method!r} is not trained with LoRA (trainable: {', '.join(names(fine_tuned=True))})"
        )
    records_path = params.work_dir(dataset) / "records.parquet"
    records = read_records(records_path, spec.variant)
    column = kshot_column(k_shots)
    if column not in records.columns:
        raise ConfigError(f"{records_path}: no {k_shots}-shot set (records.k_shots builds {params.records.k_shots})")
    train = records[(records["split"] == "train") & records[column]]
    valid = records[records["split"] == "valid"]
    out_dir = (
        Path(out_dir) if out_dir is not None else params.paths.models_dir / dataset / f"{method}-k{k_shots}-s{seed}"
    )
    print_now = training_fingerprint(
        params.train,
        params.train.base_model,
        seed,
        params.records.max_length,
        _records_frame(train),
        _records_frame(valid),
    )[0]
    done = finished_training(out_dir, print_now)
    if done is not None:
        log.info("%s: trained already with these settings and records: the adapter is reused", out_dir)
        order_followers(("none",))
        return done
    world = world_from_env()
    processes = resolve_processes(params.train.processes, _gpu_count())
    if world.size == 1 and processes > 1:
        log_path = launch_training(params, dataset, method, k_shots, seed, out_dir, processes)
        done = finished_training(out_dir, print_now)
        if done is None:
            raise TrainingError(
                f"{out_dir}: the training on {processes} processes ended without a train.json "
                f"of these settings (output in {log_path})"
            )
        return done
    meta = {"dataset": dataset, "method": method, "variant": spec.variant, "k_shots": k_shots}
    order_followers(("train", dataset, method, k_shots, seed, str(out_dir)))  # an experiment's other ranks
    result = train_adapter(
        params.train.base_model,
        train,
        valid,
        params.train,
        out_dir,
        max_length=params.records.max_length,
        seed=seed,
        meta=meta,
        score_batch_size=params.llm.batch_size,
    )
    on_main(current_comm(), lambda: result.write(out_dir / "train.json"))
    return result


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


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
