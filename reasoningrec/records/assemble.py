"""Records of every requested variant from the stage frames (samples, items and the synthesised texts)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from reasoningrec.errors import ConfigError, DataError
from reasoningrec.records.fit import fit_record
from reasoningrec.records.inputs import item_texts, usable_texts
from reasoningrec.records.kshot import kshot_column, select_samples
from reasoningrec.records.prompt import ItemText, build_completion, variant_spec

log = logging.getLogger(__name__)


def build_records(
    samples: pd.DataFrame,
    items: pd.DataFrame,
    *,
    tokenizer,
    domain: str,
    variants: Sequence[str],
    k_shots: Sequence[int],
    valid_size: int,
    max_length: int,
    seed: int,
    descriptions: pd.DataFrame | None = None,
    profiles: pd.DataFrame | None = None,
    reasoning: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict]:
    """All records of the requested variants and a summary (counts, shortened, over-long).

    When ``reasoning`` is given, only train/valid samples that have reasoning are eligible (the
    synthesis may have run on a slice), so every variant uses the same users.
    """
    available = {"descriptions": descriptions, "profiles": profiles, "reasoning": reasoning}
    for variant in variants:
        missing = sorted(name for name in variant_spec(variant).needs if available[name] is None)
        if missing:
            files = ", ".join(f"{name}.parquet" for name in missing)
            raise ConfigError(f"records variant {variant!r} needs {files}; run the synthesis/import stage first")

    samples = samples.copy()
    samples["user_id"] = samples["user_id"].astype(str)
    reasons: dict[tuple[str, str], tuple[int, str]] = {}
    unusable = 0
    if reasoning is not None:
        # Rows the synthesis/import flagged invalid (empty, refused, or explaining another target)
        # are neither training completions nor references.
        usable = reasoning["valid"].fillna(False).astype(bool) if "valid" in reasoning else None
        unusable = 0 if usable is None else int((~usable).sum())
        for row in (reasoning if usable is None else reasoning[usable]).itertuples(index=False):
            reasons[(str(row.user_id), str(row.split))] = (int(row.label), str(row.reasoning or ""))
        has = [(u, s) in reasons or s == "test" for u, s in zip(samples["user_id"], samples["split"], strict=True)]
        excluded = int((~np.asarray(has)).sum())
        samples = samples[np.asarray(has)]
    else:
        excluded = 0
    selected = select_samples(samples, k_shots, valid_size, seed)

    texts = item_texts(items, descriptions)
    profile_of = {}
    profiles = usable_texts(profiles)
    if profiles is not None:
        profile_of = dict(zip(profiles["user_id"].astype(str), profiles["profile"].fillna(""), strict=True))

    rows, shortened, overlong, max_tokens = [], dict.fromkeys(variants, 0), dict.fromkeys(variants, 0), 0
    no_reference = 0
    for position, sample in enumerate(selected.itertuples(index=False)):
        user, split, label = str(sample.user_id), str(sample.split), int(sample.label)
        target = _lookup(texts, sample.target_item, position, "target_item")
        history = [
            (int(lab), _lookup(texts, item, position, "history_items"))
            for item, lab in zip(sample.history_items, sample.history_labels, strict=True)
        ]
        reference = None
        if (user, split) in reasons:
            reason_label, reference = reasons[(user, split)]
            if reason_label != label:
                raise DataError(
                    "reasoning.parquet",
                    f"label {reason_label} but samples.parquet says {label}",
                    field=f"user_id={user}, split={split}",
                )
        elif reasoning is not None:
            no_reference += 1
        for variant in variants:
            fitted = fit_record(
                tokenizer,
                variant,
                domain,
                profile_of.get(user, ""),
                history,
                target,
                build_completion(variant, label, reference),
                max_length,
            )
            shortened[variant] += fitted.dropped > 0
            overlong[variant] += fitted.n_tokens > max_length
            max_tokens = max(max_tokens, fitted.n_tokens)
            rows.append(
                {
                    "user_id": user,
                    "split": split,
                    "label": np.int8(label),
                    "variant": variant,
                    "target_item": str(sample.target_item),
                    "prompt_text": fitted.prompt_text,
                    "completion_text": fitted.completion_text,
                    "prompt": fitted.prompt,
                    "completion": fitted.completion,
                    "reference": reference,
                    "n_tokens": fitted.n_tokens,
                    "history_kept": fitted.history_kept,
                    "history_dropped": fitted.dropped,
                    **{kshot_column(k): bool(getattr(sample, kshot_column(k))) for k in k_shots},
                }
            )
    records = pd.DataFrame(rows)
    for variant in variants:
        if shortened[variant]:
            log.info("records %s: %d prompts shortened to fit %d tokens", variant, shortened[variant], max_length)
        if overlong[variant]:
            log.warning(
                "records %s: %d records exceed %d tokens even without history", variant, overlong[variant], max_length
            )
    summary = _summary(records, selected, k_shots, shortened, overlong, max_tokens, excluded, no_reference)
    summary["reasoning_flagged_invalid"] = unusable
    return records, summary


def _lookup(texts: dict[str, ItemText], item, position: int, field: str) -> ItemText:
    try:
        return texts[str(item)]
    except KeyError:
        raise DataError(
            "samples.parquet", f"item {item!r} is not in items.parquet", row=position, field=field
        ) from None


def _summary(records, selected, k_shots, shortened, overlong, max_tokens, excluded, no_reference) -> dict:
    one = records[records["variant"] == records["variant"].iloc[0]] if len(records) else records
    splits = {}
    for split in ("train", "valid", "test"):
        part = one[one["split"] == split] if len(one) else one
        splits[split] = {"records": int(len(part)), "likes": int(part["label"].sum()) if len(part) else 0}
    train = selected[selected["split"] == "train"]
    return {
        "variants": sorted(records["variant"].unique().tolist()) if len(records) else [],
        "splits": splits,
        "k_shots": {
            str(k): {
                "records": int(train[kshot_column(k)].sum()),
                "likes": int(train.loc[train[kshot_column(k)], "label"].sum()),
            }
            for k in k_shots
        },
        "shortened": shortened,
        "overlong": overlong,
        "max_tokens": int(max_tokens),
        "excluded_without_reasoning": int(excluded),
        "test_without_reference": int(no_reference),
        "rows": int(len(records)),
    }
