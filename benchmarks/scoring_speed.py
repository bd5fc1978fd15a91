"""One-forward-pass P(Yes) scoring versus the paper's recipe, same model and records.

The paper's recipe: left-pad every prompt to 2,100 tokens, generate 256 new tokens, then look up the
first generated Yes/No answer token and read its probability (renormalised over Yes/No). Ours: one
forward pass over ``prompt + "Prediction:"``, length-sorted batches, logits at the last position only.

Records: ``--records records.parquet`` (the pipeline's test split, variant ``--variant``), else the
paper authors' real SFT test records (``<data>/reasoningrec-paper/<dataset>/sft_test.json.gz``, found
through ``--data-dir`` or ``$REASONINGREC_DATA_DIR``), else synthetic prompts of realistic length.

An untuned base model often writes no ``Prediction: Yes/No`` within 256 tokens, and the paper's
recipe then has no answer token to read (0.5). A fair comparison scores a model that answers first:
``--adapter DIR`` (a trained adapter), or ``--train-adapter DIR`` (a quick LoRA adapter trained here on
the train/valid records of ``--records`` through :func:`reasoningrec.training.train.train_adapter`). Both
AUC differences are reported: over all records, and over the records whose generated text starts
with ``Prediction: Yes`` or ``Prediction: No`` (with their share).

    python -m benchmarks.scoring_speed --n 16 --out docs/performance.md
    python -m benchmarks.scoring_speed --records data/beauty/records.parquet --variant full \\
        --train-adapter /tmp/quick_adapter --train-epochs 1 --n 128 --batch-size 16
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", message=r".*MatMul8bitLt: inputs will be cast.*")


def load_records(args) -> tuple[list[str], list[int], str]:
    """(prompt texts, labels, where they came from): label-balanced, ``args.n`` in all."""
    if args.records:
        from reasoningrec.records.stage import read_records

        frame = read_records(args.records, args.variant)
        frame = frame[frame["split"] == "test"]
        texts, labels = frame["prompt_text"].tolist(), frame["label"].astype(int).tolist()
        source = f"{args.records} (variant {args.variant}, test split)"
    else:
        data_dir = args.data_dir or os.environ.get("REASONINGREC_DATA_DIR")
        path = Path(data_dir or "data/raw") / "reasoningrec-paper" / args.dataset / "sft_test.json.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                rows = json.load(handle)
            texts = [f"{r['instruction']}\n\n{r['input']}" for r in rows]
            labels = [int(r["output"].strip().startswith("Prediction: Yes")) for r in rows]
            source = f"paper SFT test records ({args.dataset})"
        else:
            texts, labels, source = _synthetic(args.n * 4), [i % 2 for i in range(args.n * 4)], "synthetic"
    rng = random.Random(args.seed)
    yes = [i for i, y in enumerate(labels) if y == 1]
    no = [i for i, y in enumerate(labels) if y == 0]
    rng.shuffle(yes)
    rng.shuffle(no)
    half = args.n // 2
    pick = yes[: args.n - min(half, len(no))] + no[:half]
    return [texts[i] for i in pick], [labels[i] for i in pick], source


def _synthetic(n: int) -> list[str]:
    rng = random.Random(0)
    words = [
        "gentle",
        "scent",
        "cream",
        "moisturising",
        "lasting",
        "value",
        "fragrance",
        "hair",
        "skin",
        "brand",
        "quality",
        "price",
        "soft",
    ]
    texts = []
    for _ in range(n):
        items = "\n".join(
            f"{rng.choice(['Liked', 'Disliked'])}: Item {rng.randint(1, 999)}\n  Description: "
            + " ".join(rng.choices(words, k=40))
            for _ in range(5)
        )
        texts.append(
            "You are an expert beauty product recommender.\n\nUser profile:\n"
            + " ".join(rng.choices(words, k=100))
            + f"\n\nRecent products:\n{items}\n\nTarget product: Item 1\n\n"
            + 'Answer "Prediction: Yes" or "Prediction: No".'
        )
    return texts


def train_quick_adapter(args) -> Path:
    """A LoRA adapter trained on the train/valid records of ``args.records`` (``--train-limit`` of
    each, label-balanced), ``--train-epochs`` epochs; returns the adapter folder."""
    from reasoningrec.config import TrainConfig
    from reasoningrec.records.stage import read_records
    from reasoningrec.training.train import train_adapter

    frame = read_records(args.records, args.variant)
    train = _balanced(frame[frame["split"] == "train"], args.train_limit, args.seed)
    valid = _balanced(frame[frame["split"] == "valid"], max(8, args.train_limit // 8), args.seed)
    if train.empty or valid.empty:
        raise SystemExit(f"{args.records}: variant {args.variant} needs train and valid records to train on")
    overrides = {"learning_rate": args.train_lr, "answer_loss_weight": args.answer_loss_weight}
    cfg = TrainConfig(
        base_model=args.model,
        epochs=args.train_epochs,
        patience=args.train_epochs,
        batch_size=args.train_batch_size,
        seed=args.seed,
        **{key: value for key, value in overrides.items() if value is not None},
    )
    result = train_adapter(
        args.model, train, valid, cfg, args.train_adapter, seed=args.seed, score_batch_size=args.batch_size
    )
    print(
        f"trained {result.adapter_dir} on {len(train)} records in {result.seconds:.0f} s "
        f"({result.precision}; best valid AUC {result.best_valid_auc:.4f})",
        flush=True,
    )
    return Path(result.adapter_dir)


def _balanced(frame, n: int, seed: int):
    """Up to ``n`` rows, half of each label where there are enough."""
    import pandas as pd

    half = n // 2
    parts = [frame[frame["label"] == y].sample(frac=1.0, random_state=seed).head(half) for y in (1, 0)]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def answered(texts: list[str]) -> np.ndarray:
    """Which generated texts start with ``Prediction: Yes`` or ``Prediction: No``."""
    from reasoningrec.answer import parse_answer

    return np.array([parse_answer(t, anywhere=False).parsed for t in texts], dtype=bool)


def paper_recipe(model, tokenizer, prompts, answer_ids, pad_to, new_tokens, batch_size) -> tuple[np.ndarray, list[str]]:
    """Generate ``new_tokens`` from prompts left-padded to ``pad_to``; P(Yes) at the first answer token
    (0.5 where no answer token was generated), and the generated texts."""
    import torch

    yes_id, no_id = answer_ids
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    out = np.full(len(prompts), 0.5)
    texts: list[str] = []
    for start in range(0, len(prompts), batch_size):
        encoded = [tokenizer(p)["input_ids"] for p in prompts[start : start + batch_size]]
        width = max(pad_to, max(len(e) for e in encoded))
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(encoded):
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        with torch.inference_mode():
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=pad,
            )
        tokens = gen.sequences[:, width:].cpu()
        texts.extend(tokenizer.batch_decode(tokens, skip_special_tokens=True))
        for row in range(tokens.shape[0]):
            hits = ((tokens[row] == yes_id) | (tokens[row] == no_id)).nonzero()
            if len(hits):
                step = int(hits[0])
                pair = gen.logits[step][row, [yes_id, no_id]].float()
                out[start + row] = torch.softmax(pair, -1)[0].item()
    return out, texts


def subset_auc(labels, scores, mask) -> float | None:
    """AUC over the masked records; None where they hold one class only."""
    from reasoningrec.metrics import auc

    picked = [y for y, m in zip(labels, mask, strict=True) if m]
    if len(set(picked)) < 2:
        return None
    return auc(picked, np.asarray(scores)[mask])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded", help="base model: embedded, hub id or folder")
    parser.add_argument("--adapter", help="trained adapter folder (load_adapter); overrides --model")
    parser.add_argument("--train-adapter", help="train a quick LoRA adapter on --records into this folder first")
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=256, help="train records (label-balanced)")
    parser.add_argument("--train-batch-size", type=int, default=8)
    parser.add_argument("--train-lr", type=float, help="default: train.learning_rate's default")
    parser.add_argument("--answer-loss-weight", type=float, help="default: train.answer_loss_weight's default")
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="weights of both recipes (auto: bf16 on a CUDA GPU, fp32 on CPU)",
    )
    parser.add_argument("--records", help="records.parquet of the pipeline")
    parser.add_argument("--variant", default="full")
    parser.add_argument("--dataset", default="beauty", help="paper dataset for real records (beauty, fashion)")
    parser.add_argument("--data-dir", help="root of the raw data (default $REASONINGREC_DATA_DIR)")
    parser.add_argument("--n", type=int, default=16, help="records to score (label-balanced)")
    parser.add_argument("--pad-to", type=int, default=2100)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="append the markdown table to this file")
    args = parser.parse_args(argv)
    if args.train_adapter and not args.records:
        parser.error("--train-adapter needs --records (the records it trains on)")
    if args.train_adapter and args.adapter:
        parser.error("--train-adapter and --adapter exclude each other")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasoningrec.answer import answer_token_ids
    from reasoningrec.chat import render_chat
    from reasoningrec.metrics import auc
    from reasoningrec.models import choose_precision, load_adapter, resolve_model, torch_dtype
    from reasoningrec.scoring import score_prompts

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.dtype == "auto":  # bf16 on a CUDA GPU that has it, fp32 on CPU
        dtype = torch_dtype(choose_precision("auto", cuda=device == "cuda"))
    else:
        dtype = getattr(torch, args.dtype)
    if args.train_adapter:
        args.adapter = str(train_quick_adapter(args))
    if args.adapter:
        model, tokenizer, _ = load_adapter(args.adapter, device=device, dtype=dtype)
        name = f"{args.adapter} (adapter)"
    else:
        path = resolve_model(args.model)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        name = args.model
    texts, labels, source = load_records(args)
    prompts = [render_chat(tokenizer, t) for t in texts]
    answer_ids = answer_token_ids(tokenizer)
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]

    score_prompts(model, tokenizer, prompts[:2], args.batch_size, answer_ids=answer_ids)  # warm-up
    t0 = time.perf_counter()
    ours = score_prompts(model, tokenizer, prompts, args.batch_size, answer_ids=answer_ids)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs, generated = paper_recipe(
        model, tokenizer, prompts, answer_ids, args.pad_to, args.new_tokens, args.batch_size
    )
    t_theirs = time.perf_counter() - t0

    hardware = (
        torch.cuda.get_device_name()
        if device == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    auc_ours, auc_theirs = auc(labels, ours), auc(labels, theirs)
    mask = answered(generated)
    sub_ours, sub_theirs = subset_auc(labels, ours, mask), subset_auc(labels, theirs, mask)
    if sub_ours is None:
        answered_line = (
            f"Answered records (generated text starts with `Prediction: Yes|No`): {mask.sum()}/{len(mask)} "
            f"({mask.mean():.0%}); too few of both labels for an AUC there."
        )
    else:
        answered_line = (
            f"Answered records (generated text starts with `Prediction: Yes|No`): {mask.sum()}/{len(mask)} "
            f"({mask.mean():.0%}); AUC there: ours {sub_ours:.4f}, paper {sub_theirs:.4f}, "
            f"|AUC difference| {abs(sub_ours - sub_theirs):.4f}; max |P(Yes) difference| "
            f"{np.max(np.abs(ours - theirs)[mask]):.4f}."
        )
    table = "\n".join(
        [
            f"### Scoring speed: one forward pass vs the paper's generate-256 recipe ({time.strftime('%Y-%m-%d')})",
            "",
            f"Model {name}; {len(prompts)} records from {source} (prompt tokens {min(lengths)}-{max(lengths)}, "
            f"mean {np.mean(lengths):.0f}); batch {args.batch_size}; {hardware}, {str(dtype).removeprefix('torch.')}; "
            f"paper recipe: left-pad to {args.pad_to}, {args.new_tokens} new tokens.",
            "",
            "| method | seconds | records/s | AUC |",
            "|---|---:|---:|---:|",
            f"| one forward pass (ours) | {t_ours:.2f} | {len(prompts) / t_ours:.2f} | {auc_ours:.4f} |",
            f"| generate + look up (paper) | {t_theirs:.1f} | {len(prompts) / t_theirs:.3f} | {auc_theirs:.4f} |",
            "",
            f"Speed-up {t_theirs / t_ours:.1f}x; |AUC difference| {abs(auc_ours - auc_theirs):.4f}; "
            f"max |P(Yes) difference| {np.max(np.abs(ours - theirs)):.4f} "
            f"(records where the generated text had no Yes/No token get 0.5 in the paper recipe).",
            "",
            answered_line,
            "",
        ]
    )
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
