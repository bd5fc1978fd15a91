"""The LLM synthesis stages: item descriptions, user profiles and label-conditioned reasoning.

Each ``run_*`` reads its inputs from the dataset's work folder, builds prompts with the pure
builders of :mod:`reasoningrec.synthesis.prompting`, generates through the (cached) backend with the
guards of :mod:`reasoningrec.synthesis.generate`, and writes a Parquet file plus a JSON summary.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from reasoningrec.errors import DataError
from reasoningrec.io import write_parquet
from reasoningrec.synthesis.generate import Outcome, Stats, failure_examples, generate_guarded
from reasoningrec.synthesis.guards import count_problems
from reasoningrec.synthesis.prompting import ItemText, Prompt, describe_prompt, profile_prompt, reason_prompt
from reasoningrec.synthesis.summary import (
    SUMMARIES,
    DescribeSummary,
    ProfileSummary,
    ReasonSummary,
    SynthesisSummary,
)

log = logging.getLogger(__name__)
SOURCE = "llm"
CHUNK_BATCHES = 4  # prompts per chunk = llm.batch_size × this: progress and cache commits per chunk


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def _read(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(path, f"not found: {what}")
    frame = pd.read_parquet(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing columns {missing} (has {list(frame.columns)})")
    return frame


def _user_order(users: pd.Series) -> list[str]:
    """Users in the order samples.parquet first lists them: the order every text stage writes (and a
    sharded run's merge restores)."""
    return list(dict.fromkeys(users.astype(str)))


def item_texts(items: pd.DataFrame, descriptions: pd.DataFrame | None) -> dict[str, tuple[str, str]]:
    """item id -> (title, description): generated descriptions first, else the items' own text."""
    texts = {}
    own = items["description"] if "description" in items.columns else pd.Series([None] * len(items))
    for item_id, title, text in zip(items["item_id"].astype(str), items["title"], own, strict=True):
        texts[item_id] = ("" if title is None else str(title), "" if text is None or text != text else str(text))
    if descriptions is not None:
        usable = descriptions
        if "valid" in descriptions.columns:
            usable = descriptions[descriptions["valid"].astype(bool)]
        for item_id, text in zip(usable["item_id"].astype(str), usable["description"], strict=True):
            if item_id in texts and isinstance(text, str) and text:
                texts[item_id] = (texts[item_id][0], text)
    return texts


def _item(texts: dict[str, tuple[str, str]], item_id: object, liked: int, path: str, field: str) -> ItemText:
    try:
        title, description = texts[str(item_id)]
    except KeyError:
        raise DataError(path, f"item {item_id!r} is not in items.parquet", field=field) from None
    return ItemText(title=title, description=description, liked=bool(liked))


# ---------------------------------------------------------------------------------------------
# Prompt sets (pure)
# ---------------------------------------------------------------------------------------------


def description_prompts(
    items: pd.DataFrame,
    reviews: dict[str, list[str]],
    domain: str,
    words: int | None,
    review_words: int,
    max_reviews: int,
) -> list[Prompt]:
    return [
        describe_prompt(row, reviews.get(str(row["item_id"]), []), domain, words, review_words, max_reviews)
        for row in items.to_dict("records")
    ]


def profile_items_of(samples: pd.DataFrame, users: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    """user -> profile (item, label) pairs; the same for every split, so the first row is taken."""
    first = samples.assign(user_id=samples["user_id"].astype(str)).drop_duplicates("user_id")
    first = first.set_index("user_id")
    return {
        user: list(
            zip(
                [str(i) for i in first.at[user, "profile_items"]],
                [int(x) for x in first.at[user, "profile_labels"]],
                strict=True,
            )
        )
        for user in users
    }


def profile_prompts(
    pairs: dict[str, list[tuple[str, int]]], texts, domain: str, words: int | None
) -> dict[str, Prompt]:
    """One prompt per user with profile items; users without any are left out (no LLM call)."""
    return {
        user: profile_prompt([_item(texts, i, y, "samples.parquet", "profile_items") for i, y in items], domain, words)
        for user, items in pairs.items()
        if items
    }


def reason_prompts(
    samples: pd.DataFrame, profiles: dict[str, str], texts, domain: str, words: int | None
) -> list[Prompt]:
    prompts = []
    for row in samples.itertuples(index=False):
        history = [
            _item(texts, i, y, "samples.parquet", "history_items")
            for i, y in zip(row.history_items, row.history_labels, strict=True)
        ]
        target = _item(texts, row.target_item, int(row.label), "samples.parquet", "target_item")
        prompts.append(
            reason_prompt(profiles.get(str(row.user_id), ""), history, target, int(row.label), domain, words)
        )
    return prompts


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def _settings(section):
    from reasoningrec.llm import GenerationSettings

    return GenerationSettings(
        temperature=section.temperature, top_p=section.top_p, max_new_tokens=section.max_new_tokens, seed=section.seed
    )


@contextlib.contextmanager
def _backend(params, backend):
    """The given backend, or one made from ``params.llm`` and closed when the stage is done (its
    worker processes, with several ``llm.devices``, end with it)."""
    if backend is not None:
        yield backend
        return
    from reasoningrec.llm import make_backend

    made = make_backend(params.llm, params.paths.cache_dir)
    try:
        yield made
    finally:
        close = getattr(made, "close", None)
        if callable(close):
            close()


def _generate(params, backend, prompts: list[Prompt], section, desc: str) -> tuple[list[Outcome], Stats]:
    # A backend over several devices gets a chunk per device at once, so no device waits for another.
    chunk = params.llm.batch_size * CHUNK_BATCHES * int(getattr(backend, "parallelism", 1))
    return generate_guarded(backend, prompts, _settings(section), chunk_size=chunk, desc=desc)


def _summary(
    stage: str,
    dataset: str,
    backend,
    section,
    keys: list[str],
    outcomes: list[Outcome],
    stats: Stats,
    limit: int | None,
    **extra,
) -> SynthesisSummary:
    problems = count_problems(o.problem for o in outcomes)
    return SUMMARIES[stage](
        **{
            "stage": stage,
            "dataset": dataset,
            "backend": backend.name,
            "model": backend.model_id,
            "settings": {
                "temperature": section.temperature,
                "top_p": section.top_p,
                "max_new_tokens": section.max_new_tokens,
                "seed": section.seed,
                "words": section.words,
            },
            "limit": limit,
            "count": len(outcomes),
            "valid": sum(o.valid for o in outcomes),
            "invalid": sum(not o.valid for o in outcomes),
            "problems": problems,
            "examples": failure_examples(keys, outcomes),
            **stats.summary(),
            **extra,
        }
    )


def _frame(keys: dict[str, list], outcomes: list[Outcome], column: str, model: str) -> pd.DataFrame:
    frame = pd.DataFrame(keys)
    frame[column] = [o.text for o in outcomes]
    frame["source"] = SOURCE
    frame["model"] = model
    frame["valid"] = pd.Series([o.valid for o in outcomes], dtype=bool)
    frame["problem"] = pd.Series([o.problem for o in outcomes], dtype=object)
    return frame


def run_describe(
    params,
    dataset: str,
    out_dir: Path | None = None,
    limit: int | None = None,
    *,
    backend=None,
    inputs_dir: Path | None = None,
) -> DescribeSummary:
    """Write ``descriptions.parquet`` + ``describe.json``: one short description per item.

    Only items that samples.parquet refers to are described when it exists (the others are never
    shown to a model); ``limit`` (default ``describe.limit``) takes the first N of them. Inputs are
    read from ``inputs_dir`` (default: ``out_dir``).
    """
    out_dir = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    source = Path(inputs_dir) if inputs_dir is not None else out_dir
    limit = params.describe.limit if limit is None else limit
    items = _read(source / "items.parquet", ["item_id", "title"], "run `reasoningrec ingest` first")
    items = items.assign(item_id=items["item_id"].astype(str))
    reviews_path = source / "item_reviews.parquet"
    reviews: dict[str, list[str]] = {}
    if reviews_path.exists():
        frame = _read(reviews_path, ["item_id", "reviews"], "")
        reviews = {str(i): [str(r) for r in rs] for i, rs in zip(frame["item_id"], frame["reviews"], strict=True)}
    samples_path = source / "samples.parquet"
    total_items = len(items)
    if samples_path.exists():
        samples = pd.read_parquet(samples_path, columns=["target_item", "history_items", "profile_items"])
        used = set(samples["target_item"].astype(str))
        for column in ("history_items", "profile_items"):
            used.update(str(i) for items_ in samples[column] for i in items_)
        items = items[items["item_id"].isin(used)]
    if limit is not None:
        items = items.head(limit)
    cfg = params.dataset(dataset)
    prompts = description_prompts(
        items, reviews, cfg.domain, params.describe.words, params.prepare.review_words, params.prepare.reviews_per_item
    )
    with _backend(params, backend) as backend:
        outcomes, stats = _generate(params, backend, prompts, params.describe, f"describe {dataset}")
    frame = _frame({"item_id": items["item_id"].tolist()}, outcomes, "description", backend.model_id)
    write_parquet(out_dir / "descriptions.parquet", frame)
    summary = _summary(
        "describe",
        dataset,
        backend,
        params.describe,
        frame["item_id"].tolist(),
        outcomes,
        stats,
        limit,
        items_total=total_items,
        items_with_reviews=int(items["item_id"].isin(reviews).sum()),
    )
    summary.write(out_dir / "describe.json")
    return summary


def run_profile(
    params, dataset: str, out_dir: Path | None = None, limit: int | None = None, *, backend=None
) -> ProfileSummary:
    """Write ``profiles.parquet`` + ``profile.json``: one profile per user (empty without profile items);
    ``limit`` (default ``profile.limit``): the first N users."""
    out_dir = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    limit = params.profile.limit if limit is None else limit
    samples = _read(
        out_dir / "samples.parquet", ["user_id", "profile_items", "profile_labels"], "run `reasoningrec prepare` first"
    )
    items = _read(out_dir / "items.parquet", ["item_id", "title"], "run `reasoningrec ingest` first")
    descriptions = _optional(out_dir / "descriptions.parquet")
    users = _user_order(samples["user_id"])[:limit] if limit is not None else _user_order(samples["user_id"])
    pairs = profile_items_of(samples, users)
    texts = item_texts(items, descriptions)
    prompts = profile_prompts(pairs, texts, params.dataset(dataset).domain, params.profile.words)
    asked = list(prompts)
    with _backend(params, backend) as backend:
        outcomes, stats = _generate(params, backend, [prompts[u] for u in asked], params.profile, f"profile {dataset}")
    by_user = dict(zip(asked, outcomes, strict=True))
    # Users without profile items: the documented no-profile variant, an empty but valid profile.
    kept = [by_user.get(u, Outcome(text="", problem=None, retried=False)) for u in users]
    frame = _frame({"user_id": users}, kept, "profile", backend.model_id)
    frame["profile_items"] = [len(pairs[u]) for u in users]
    write_parquet(out_dir / "profiles.parquet", frame)
    summary = _summary(
        "profile",
        dataset,
        backend,
        params.profile,
        asked,
        outcomes,
        stats,
        limit,
        users=len(users),
        users_without_profile_items=len(users) - len(asked),
        descriptions_from="descriptions.parquet" if descriptions is not None else "items.parquet",
    )
    summary.write(out_dir / "profile.json")
    return summary


def run_reason(
    params, dataset: str, out_dir: Path | None = None, limit: int | None = None, *, backend=None
) -> ReasonSummary:
    """Write ``reasoning.parquet`` + ``reason.json``: label-conditioned reasoning for every sample
    (train, valid and test) of the first ``limit`` users (default ``reason.limit``; None = all users)."""
    out_dir = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    limit = params.reason.limit if limit is None else limit
    samples = _read(
        out_dir / "samples.parquet",
        ["user_id", "split", "target_item", "label", "history_items", "history_labels"],
        "run `reasoningrec prepare` first",
    )
    items = _read(out_dir / "items.parquet", ["item_id", "title"], "run `reasoningrec ingest` first")
    profiles_frame = _read(
        out_dir / "profiles.parquet", ["user_id", "profile"], "run `reasoningrec profile` (or `import-texts`) first"
    )
    descriptions = _optional(out_dir / "descriptions.parquet")
    samples = samples.assign(user_id=samples["user_id"].astype(str))
    if limit is not None:
        samples = samples[samples["user_id"].isin(_user_order(samples["user_id"])[:limit])]
    profile_ok = profiles_frame
    if "valid" in profiles_frame.columns:
        profile_ok = profiles_frame[profiles_frame["valid"].astype(bool)]
    profiles = dict(zip(profile_ok["user_id"].astype(str), profile_ok["profile"].fillna(""), strict=True))
    texts = item_texts(items, descriptions)
    prompts = reason_prompts(samples, profiles, texts, params.dataset(dataset).domain, params.reason.words)
    with _backend(params, backend) as backend:
        outcomes, stats = _generate(params, backend, prompts, params.reason, f"reason {dataset}")
    keys = {
        "user_id": samples["user_id"].tolist(),
        "split": samples["split"].astype(str).tolist(),
        "target_item": samples["target_item"].astype(str).tolist(),
        "label": samples["label"].astype("int8").tolist(),
    }
    frame = _frame(keys, outcomes, "reasoning", backend.model_id)
    frame["label"] = frame["label"].astype("int8")
    frame = frame[["user_id", "split", "target_item", "label", "reasoning", "source", "model", "valid", "problem"]]
    write_parquet(out_dir / "reasoning.parquet", frame)
    example_keys = [f"{u}/{s}" for u, s in zip(keys["user_id"], keys["split"], strict=True)]
    summary = _summary(
        "reason",
        dataset,
        backend,
        params.reason,
        example_keys,
        outcomes,
        stats,
        limit,
        users=int(samples["user_id"].nunique()),
        per_split={s: int(n) for s, n in samples["split"].value_counts().items()},
        with_profile=sum(bool(profiles.get(u)) for u in samples["user_id"].unique()),
    )
    summary.write(out_dir / "reason.json")
    return summary


def _optional(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None
