"""Prompt/completion records for fine-tuning and scoring; K-shot sampling.

A record asks "will this user like the target item?" with the user's profile, their recent liked and
disliked items (oldest first) and the target item, and answers ``Prediction: Yes|No`` then a newline
and the reasoning. Variants of that layout (which inputs each reads, whether its completion carries
reasoning) are defined in :mod:`reasoningrec.methods`.

Instruction text lives in ``reasoningrec/prompts/records/*.txt``. Records are rendered with the base
model's chat template (user turn = prompt, assistant turn = completion) into TRL's prompt/completion
strings. A record longer than ``records.max_length`` tokens loses its oldest history items first;
the answer is never cut.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from reasoningrec.answer import format_completion
from reasoningrec.chat import count_tokens, render_example
from reasoningrec.errors import ConfigError, DataError
from reasoningrec.methods import VARIANTS, Variant
from reasoningrec.models import load_tokenizer
from reasoningrec.synthesis.guards import TRUNCATED

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 200


def kshot_column(k: int) -> str:
    """Name of the boolean column marking membership of the K-shot training set."""
    return f"in_k{k}"


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _template(name: str) -> str:
    return resources.files("reasoningrec.prompts").joinpath("records", name).read_text(encoding="utf-8").strip()


@lru_cache(maxsize=1)
def _roles() -> dict[str, tuple[str, str]]:
    roles = {}
    for line in _template("roles.txt").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            domain, role, noun = (part.strip() for part in line.split("|"))
            roles[domain] = (role, noun)
    return roles


def _words(domain: str) -> dict[str, str]:
    try:
        role, noun = _roles()[domain]
    except KeyError:
        raise ConfigError(f"no recommender role for domain {domain!r} in prompts/records/roles.txt") from None
    return {"role": role, "item": noun, "items": noun + "s"}


# ---------------------------------------------------------------------------------------------
# Prompt and completion text (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemText:
    """What a prompt says about one item: title, short details (brand, price, genres, year), description."""

    title: str
    details: str = ""
    description: str = ""

    def line(self, with_description: bool) -> str:
        text = self.title + (f" ({self.details})" if self.details else "")
        if with_description and self.description:
            text += f"\n  Description: {self.description}"
        return text


def build_prompt(
    variant: str,
    domain: str,
    profile: str,
    history: Sequence[tuple[int, ItemText]],
    target: ItemText,
) -> str:
    """The unrendered prompt text of one record; ``history`` is (label, item) oldest first."""
    spec = variant_spec(variant)
    words = _words(domain)
    if variant == "titles":
        liked = ", ".join(f'"{item.title}"' for label, item in history if label == 1) or "none"
        disliked = ", ".join(f'"{item.title}"' for label, item in history if label != 1) or "none"
        return _template("titles.txt").format(liked=liked, disliked=disliked, target=f'"{target.title}"', **words)

    describe = variant != "no-description"
    parts = [_template("instruction.txt").format(**words)]
    if variant != "no-profile" and profile.strip():
        parts.append(f"User profile:\n{profile.strip()}")
    if history:
        lines = [f"{'Liked' if label == 1 else 'Disliked'}: {item.line(describe)}" for label, item in history]
        parts.append(f"Recent {words['items']} of the user, oldest first:\n" + "\n".join(lines))
    else:
        parts.append(f"Recent {words['items']} of the user: none given.")
    parts.append(f"Target {words['item']}: {target.line(describe)}")
    answer = "answer_reasoning.txt" if spec.with_reasoning else "answer_label.txt"
    parts.append(_template(answer).format(**words))
    return "\n\n".join(parts)


def build_completion(variant: str, label: int, reasoning: str | None) -> str:
    """The answer, plus a newline and the reasoning for the variants trained on reasoning."""
    return format_completion(label, reasoning if variant_spec(variant).with_reasoning else None)


def variant_spec(variant: str) -> Variant:
    """The record variant called ``variant``, or a :class:`ConfigError` listing the known ones."""
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ConfigError(f"unknown record variant {variant!r} (known: {', '.join(VARIANTS)})") from None


# ---------------------------------------------------------------------------------------------
# Length control
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FittedRecord:
    prompt_text: str
    completion_text: str
    prompt: str
    completion: str
    n_tokens: int
    history_kept: int
    dropped: int


def fit_record(
    tokenizer,
    variant: str,
    domain: str,
    profile: str,
    history: Sequence[tuple[int, ItemText]],
    target: ItemText,
    completion_text: str,
    max_length: int,
) -> FittedRecord:
    """Build and render one record, dropping the oldest history items until it fits ``max_length``.

    The completion is never shortened. If the record does not fit even without history it is
    returned as is (``n_tokens > max_length``) and the caller counts it.
    """
    history = list(history)
    dropped = 0
    while True:
        prompt_text = build_prompt(variant, domain, profile, history, target)
        prompt, completion = render_example(tokenizer, prompt_text, completion_text)
        n_tokens = count_tokens(tokenizer, prompt, completion)
        if n_tokens <= max_length or not history:
            return FittedRecord(prompt_text, completion_text, prompt, completion, n_tokens, len(history), dropped)
        history.pop(0)  # the oldest item goes first
        dropped += 1


# ---------------------------------------------------------------------------------------------
# K-shot sampling (pure)
# ---------------------------------------------------------------------------------------------


def stratified_order(labels: Sequence[int], seed: int) -> np.ndarray:
    """A permutation of row positions whose every prefix is stratified by label.

    Each class is shuffled with ``seed``; its i-th member of n gets the key (i + 0.5) / n and the
    rows are sorted by key. Taking the first K rows then gives each class round(K * share) members,
    within one, and smaller K-shot sets are subsets of larger ones (nested) by construction.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keys = np.empty(labels.size, dtype=np.float64)
    tiebreak = rng.random(labels.size)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        members = members[rng.permutation(members.size)]
        keys[members] = (np.arange(members.size) + 0.5) / members.size
    return np.lexsort((tiebreak, keys))


def kshot_members(labels: Sequence[int], k_shots: Sequence[int], seed: int) -> dict[int, np.ndarray]:
    """Boolean masks (one per K) of nested, label-stratified K-shot subsets of ``labels``' rows."""
    order = stratified_order(labels, seed)
    masks = {}
    for k in sorted(k_shots):
        mask = np.zeros(len(order), dtype=bool)
        mask[order[:k]] = True
        masks[k] = mask
    return masks


# ---------------------------------------------------------------------------------------------
# Assembling records from the stage files
# ---------------------------------------------------------------------------------------------


def usable_texts(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """Rows of a descriptions/profiles frame worth showing a model: valid ones, and ones only cut off
    at the token limit (their start still says something); texts that loop, echo the prompt, refuse
    or are empty are left out (the item then shows its title and details, the user no profile)."""
    if frame is None or "valid" not in frame.columns:
        return frame
    keep = frame["valid"].fillna(False).astype(bool)
    if "problem" in frame.columns:
        keep |= frame["problem"].astype("object").eq(TRUNCATED)
    return frame[keep]


def _item_texts(items: pd.DataFrame, descriptions: pd.DataFrame | None) -> dict[str, ItemText]:
    described = {}
    descriptions = usable_texts(descriptions)
    if descriptions is not None:
        described = dict(zip(descriptions["item_id"].astype(str), descriptions["description"].fillna(""), strict=True))
    texts = {}
    for row in items.itertuples(index=False):
        details = []
        for field, fmt in (("brand", "Brand: {}"), ("price", "Price: {}"), ("genres", "Genres: {}"), ("year", "Year: {}")):
            value = getattr(row, field, None)
            if value is not None and not pd.isna(value) and str(value).strip():
                text = str(value).strip().replace("|", ", ") if field == "genres" else str(value).strip()
                details.append(fmt.format(_clip(text)))
        item_id = str(row.item_id)
        description = described.get(item_id, "")
        texts[item_id] = ItemText(_clip(str(row.title)), "; ".join(details), str(description).strip())
    return texts


def _clip(title: str) -> str:
    # Some scraped titles and brands are whole pages of CSS (seen in the paper's Amazon Beauty items); a title
    # that long would crowd out the history, so it is cut at a word boundary.
    title = " ".join(title.split())
    if len(title) <= MAX_TITLE_CHARS:
        return title
    return title[:MAX_TITLE_CHARS].rsplit(" ", 1)[0] + " ..."


def select_samples(samples: pd.DataFrame, k_shots: Sequence[int], valid_size: int, seed: int) -> pd.DataFrame:
    """The samples that become records, with ``in_k<K>`` columns.

    Train: the largest K-shot set (smaller ones nested inside); valid: a stratified ``valid_size``
    subset; test: every sample. Rows keep a stable order (split, then selection order).
    """
    frames = []
    train = samples[samples["split"] == "train"].reset_index(drop=True)
    order = stratified_order(train["label"].to_numpy(), seed)
    biggest = max(k_shots) if k_shots else 0
    chosen = train.iloc[order[:biggest]].copy()
    for k in k_shots:
        chosen[kshot_column(k)] = False
        chosen.iloc[: min(k, len(chosen)), chosen.columns.get_loc(kshot_column(k))] = True
    frames.append(chosen)
    valid = samples[samples["split"] == "valid"].reset_index(drop=True)
    frames.append(valid.iloc[stratified_order(valid["label"].to_numpy(), seed + 1)[:valid_size]])
    frames.append(samples[samples["split"] == "test"])
    out = pd.concat(frames, ignore_index=True)
    for k in k_shots:
        out[kshot_column(k)] = out[kshot_column(k)].fillna(False).astype(bool)
    return out


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

    texts = _item_texts(items, descriptions)
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
                    "reasoning.parquet", f"label {reason_label} but samples.parquet says {label}",
                    field=f"user_id={user}, split={split}",
                )
        elif reasoning is not None:
            no_reference += 1
        for variant in variants:
            fitted = fit_record(
                tokenizer, variant, domain, profile_of.get(user, ""), history, target,
                build_completion(variant, label, reference), max_length,
            )
            shortened[variant] += fitted.dropped > 0
            overlong[variant] += fitted.n_tokens > max_length
            max_tokens = max(max_tokens, fitted.n_tokens)
            rows.append(
                {
                    "user_id": user, "split": split, "label": np.int8(label), "variant": variant,
                    "target_item": str(sample.target_item),
                    "prompt_text": fitted.prompt_text, "completion_text": fitted.completion_text,
                    "prompt": fitted.prompt, "completion": fitted.completion, "reference": reference,
                    "n_tokens": fitted.n_tokens, "history_kept": fitted.history_kept,
                    "history_dropped": fitted.dropped,
                    **{kshot_column(k): bool(getattr(sample, kshot_column(k))) for k in k_shots},
                }
            )
    records = pd.DataFrame(rows)
    for variant in variants:
        if shortened[variant]:
            log.info("records %s: %d prompts shortened to fit %d tokens", variant, shortened[variant], max_length)
        if overlong[variant]:
            log.warning("records %s: %d records exceed %d tokens even without history", variant, overlong[variant], max_length)
    summary = _summary(records, selected, k_shots, shortened, overlong, max_tokens, excluded, no_reference)
    summary["reasoning_flagged_invalid"] = unusable
    return records, summary


def _lookup(texts: dict[str, ItemText], item, position: int, field: str) -> ItemText:
    try:
        return texts[str(item)]
    except KeyError:
        raise DataError("samples.parquet", f"item {item!r} is not in items.parquet", row=position, field=field) from None


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
            str(k): {"records": int(train[kshot_column(k)].sum()), "likes": int(train.loc[train[kshot_column(k)], "label"].sum())}
            for k in k_shots
        },
        "shortened": shortened,
        "overlong": overlong,
        "max_tokens": int(max_tokens),
        "excluded_without_reasoning": int(excluded),
        "test_without_reference": int(no_reference),
        "rows": int(len(records)),
    }


# ---------------------------------------------------------------------------------------------
# Stage entry point (I/O)
# ---------------------------------------------------------------------------------------------


def _read(path: Path, required: bool, columns: Sequence[str]) -> pd.DataFrame | None:
    if not path.is_file():
        if required:
            raise DataError(path, "file not found; run the earlier pipeline stages first")
        return None
    frame = pd.read_parquet(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing columns {missing}; expected at least {list(columns)}")
    return frame


def run_records(params, dataset: str, out_dir: str | Path | None = None, *, tokenizer=None) -> dict:
    """Build ``records.parquet`` + ``records.json`` for one dataset from its work folder.

    Reads samples, items, and (where the configured variants need them) descriptions, profiles and
    reasoning. Returns the summary written to ``records.json``.
    """
    from reasoningrec.io import write_json, write_parquet

    cfg = params.records
    out_dir = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    needed = set().union(*(variant_spec(v).needs for v in cfg.variants))
    samples = _read(
        out_dir / "samples.parquet", True,
        ["user_id", "split", "target_item", "label", "history_items", "history_labels"],
    )
    items = _read(out_dir / "items.parquet", True, ["item_id", "title"])
    inputs = {
        "descriptions": _read(out_dir / "descriptions.parquet", "descriptions" in needed, ["item_id", "description"]),
        "profiles": _read(out_dir / "profiles.parquet", "profiles" in needed, ["user_id", "profile"]),
        "reasoning": _read(out_dir / "reasoning.parquet", "reasoning" in needed, ["user_id", "split", "label", "reasoning"]),
    }
    tokenizer = tokenizer or load_tokenizer(params.train.base_model)
    records, summary = build_records(
        samples, items, tokenizer=tokenizer, domain=params.dataset(dataset).domain, variants=cfg.variants,
        k_shots=cfg.k_shots, valid_size=cfg.valid_size, max_length=cfg.max_length, seed=cfg.seed, **inputs,
    )
    summary.update(
        dataset=dataset,
        tokenizer=getattr(tokenizer, "name_or_path", ""),
        base_model=params.train.base_model,
        max_length=cfg.max_length,
        seed=cfg.seed,
    )
    write_parquet(out_dir / "records.parquet", records)
    write_json(out_dir / "records.json", summary)
    return summary


def read_records(path: str | Path, variant: str | None = None) -> pd.DataFrame:
    """Load ``records.parquet`` (optionally one variant), checking the columns training needs."""
    path = Path(path)
    frame = _read(path, True, ["user_id", "split", "label", "variant", "prompt_text", "completion_text"])
    if variant is not None:
        if variant not in set(frame["variant"]):
            raise DataError(path, f"no records of variant {variant!r} (has: {sorted(set(frame['variant']))})", field="variant")
        frame = frame[frame["variant"] == variant].reset_index(drop=True)
    return frame
