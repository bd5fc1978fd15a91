"""The feature vocabulary: item features (aspects such as "dry skin", "sterling silver", "zipper")
extracted deterministically from a dataset's item texts, and the features of each item.

Method (version :data:`METHOD_VERSION`; every step is plain Python, no model, no network):

1. **Normalise** a text: HTML entities decoded (``&amp;``), Unicode NFKC, lower case, a possessive
   ``'s`` dropped, other apostrophes, hyphens and underscores read as spaces (``long-lasting`` =
   ``long lasting``, ``doesn't`` = ``doesn t``).
2. **Segment** at punctuation (``. , ; : ! ? ( ) [ ] " / |`` ...) and line breaks; n-grams never
   cross a segment boundary.
3. **Tokenise** each segment into ``[a-z0-9]+`` runs. A *content token* is alphabetic, has at least
   ``min_chars`` letters and is not on the shipped stop-word list (``stopwords.txt``: English
   function words, recommendation talk such as "user"/"prefer", and opinion words such as
   "great"/"cheap", which judge an item rather than name its features). Any other token ends a run.
4. **Fold plurals** without a lemmatiser: a token ending in ``ies``/``es``/``s`` (not ``ss``) maps to
   its singular when that singular also occurs as a token in the corpus (``brushes`` -> ``brush``
   only if ``brush`` occurs; ``gloss`` never becomes ``glos``).
5. **N-grams**: every run of 1..``max_ngram`` adjacent content tokens.
6. **Document frequency**: one document per item (title, metadata description, the usable
   synthesised description and sampled reviews); an n-gram is a feature when it occurs in at least
   ``min_df`` items and at most ``max_df`` (a share) of them.

An item's own features (for FMR) are the features occurring in its description(s) and reviews; the
title counts towards the vocabulary but not towards the item's own features. The vocabulary is stored
as JSON with the method version, the settings, the stop-list digest and a content digest
(:func:`write_vocabulary` / :func:`read_vocabulary`).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from reasoningrec.config import VocabularyConfig
from reasoningrec.errors import DataError
from reasoningrec.summary import Summary

log = logging.getLogger(__name__)

METHOD_VERSION = 1
FORMAT = "reasoningrec-feature-vocabulary"
VOCABULARY_FILE = "feature_vocabulary.json"

_POSSESSIVE = re.compile(r"(?<=[a-z0-9])'s\b")  # blanked with two spaces
_JOINERS = re.compile(r"['\-\u2010-\u2015_]+")
_SEGMENT = re.compile(r"[.,;:!?()\[\]{}\"/\\|*+=<>~^#@&%$\u201c\u201d\u2022\u2026\n\r\t]+")
_TOKEN = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The shipped stop-word list (``reasoningrec/explanations/stopwords.txt``)."""
    return frozenset(_stopword_text().split())


@lru_cache(maxsize=1)
def _stopword_text() -> str:
    raw = resources.files("reasoningrec.explanations").joinpath("stopwords.txt").read_text(encoding="utf-8")
    return "\n".join(line for line in raw.splitlines() if not line.lstrip().startswith("#"))


def stopwords_digest() -> str:
    """SHA-256 of the stop words (sorted, one a line): part of a vocabulary's identity."""
    return hashlib.sha256("\n".join(sorted(stopwords())).encode("utf-8")).hexdigest()


def clean(text: object) -> str:
    """Display form of a text: HTML entities decoded, Unicode NFKC, typographic apostrophes as ``'``."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return unicodedata.normalize("NFKC", html.unescape(str(text))).replace("\u2019", "'").replace("\u2018", "'")


def normalise(text: object) -> str:
    """Step 1 of the method: :func:`clean`, lower case, possessive ``'s`` and other apostrophes and
    hyphens blanked. Blanking keeps every character's position, so spans found in the normalised
    text index the :func:`clean` text too (:mod:`reasoningrec.explanations.mentions` relies on it)."""
    lowered = clean(text).lower()
    lowered = _POSSESSIVE.sub("  ", lowered)
    return _JOINERS.sub(lambda m: " " * len(m.group()), lowered)


def segments(text: object) -> list[list[str]]:
    """Steps 1-3: the ``[a-z0-9]+`` tokens of each punctuation-delimited segment of ``text``."""
    return [tokens for part in _SEGMENT.split(normalise(text)) if (tokens := _TOKEN.findall(part))]


def is_content(token: str, min_chars: int) -> bool:
    """An alphabetic token of at least ``min_chars`` letters that is not a stop word."""
    return token.isalpha() and len(token) >= min_chars and token not in stopwords()


def singular_candidates(token: str) -> list[str]:
    """Possible singulars of ``token`` in the order tried (``berries`` -> ``berry``, ``berrie``,
    ``berri``; ``shoes`` -> ``shoe``, ``sho``; ``boxes`` -> ``boxe``, ``box``; ``dress`` -> none)."""
    out = []
    if token.endswith("ies") and len(token) > 4:
        out.append(token[:-3] + "y")
    if token.endswith("s") and not token.endswith("ss") and len(token) > 3:
        out.append(token[:-1])
    if token.endswith("es") and len(token) > 4:
        out.append(token[:-2])
    return out


def plural_forms(tokens: Iterable[str]) -> dict[str, str]:
    """Step 4: ``{plural: singular}`` for the tokens whose singular is itself among ``tokens``."""
    known = set(tokens)
    forms = {}
    for token in known:
        for candidate in singular_candidates(token):
            if candidate in known:
                forms[token] = candidate
                break
    return forms


def ngrams(text: object, *, max_ngram: int, min_chars: int, forms: Mapping[str, str]) -> set[str]:
    """Step 5: the distinct n-grams (1..``max_ngram`` adjacent content tokens, plurals folded) of a text."""
    found: set[str] = set()
    for tokens in segments(text):
        run: list[str] = []
        for token in [*tokens, ""]:  # "" flushes the last run
            if token and is_content(token, min_chars):
                run.append(forms.get(token, token))
                continue
            for n in range(1, max_ngram + 1):
                found.update(" ".join(run[i : i + n]) for i in range(len(run) - n + 1))
            run = []
    return found


@dataclass(frozen=True, eq=False)
class FeatureVocabulary:
    """Features with their document frequency, the plural folding, and each item's own features."""

    features: Mapping[str, int]  # feature -> number of items whose text holds it
    forms: Mapping[str, str]  # plural -> singular, as folded when the vocabulary was built
    item_features: Mapping[str, frozenset[str]]  # item_id -> features of its description(s) + reviews
    settings: VocabularyConfig
    documents: int
    stopwords_digest: str = field(default_factory=stopwords_digest)
    method_version: int = METHOD_VERSION
    _detection_forms: Mapping[str, str] = field(init=False, repr=False)

    def __post_init__(self):
        # A model may write a plural the items never use ("brushes" where items say "brush"): such a
        # token folds onto a singular that is part of a feature. Tokens folded when building keep
        # their mapping, so detection reads item texts exactly as building did.
        parts = {part for feature in self.features for part in feature.split(" ")}
        extra: dict[str, str] = {}
        for part in sorted(parts):
            for plural in (part + "s", part + "es", part[:-1] + "ies" if part.endswith("y") else ""):
                if plural and plural not in parts:
                    extra.setdefault(plural, part)
        object.__setattr__(self, "_detection_forms", {**extra, **self.forms})

    def __len__(self) -> int:
        return len(self.features)

    def detect(self, text: object) -> set[str]:
        """The vocabulary features a text names (PETER's ``feature_detect``, extended to n-grams)."""
        found = ngrams(
            text, max_ngram=self.settings.max_ngram, min_chars=self.settings.min_chars, forms=self._detection_forms
        )
        return {gram for gram in found if gram in self.features}

    def payload(self) -> dict:
        """The JSON content (without the digest)."""
        return {
            "format": FORMAT,
            "method_version": self.method_version,
            "settings": self.settings.model_dump(mode="json"),
            "stopwords_digest": self.stopwords_digest,
            "documents": self.documents,
            "features": dict(sorted(self.features.items())),
            "forms": dict(sorted(self.forms.items())),
            "item_features": {item: sorted(feats) for item, feats in sorted(self.item_features.items())},
        }

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON payload: equal vocabularies have equal digests."""
        return content_digest(self.payload())


def content_digest(payload: Mapping) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Building from item texts
# ---------------------------------------------------------------------------------------------


def item_documents(
    items: pd.DataFrame, descriptions: pd.DataFrame | None = None, reviews: pd.DataFrame | None = None
) -> dict[str, tuple[str, list[str]]]:
    """``{item_id: (title, [own texts])}``: own texts = metadata description, usable synthesised
    description (as :func:`reasoningrec.records.inputs.usable_texts` keeps them) and each sampled review."""
    from reasoningrec.records.inputs import usable_texts

    own: dict[str, list[str]] = {}
    for name, frame, column in (
        ("descriptions", usable_texts(descriptions), "description"),
        ("item_reviews", reviews, "reviews"),
    ):
        if frame is None:
            continue
        if "item_id" not in frame.columns or column not in frame.columns:
            raise DataError(f"{name}.parquet", f"expected columns item_id and {column}, got {list(frame.columns)}")
        for item, value in zip(frame["item_id"].astype(str), frame[column], strict=True):
            texts = [value] if isinstance(value, str) else list(value) if hasattr(value, "__iter__") else []
            own.setdefault(item, []).extend(t for t in texts if isinstance(t, str) and t.strip())
    documents = {}
    metadata = items["description"] if "description" in items.columns else pd.Series([None] * len(items))
    for item, title, meta in zip(items["item_id"].astype(str), items["title"], metadata, strict=True):
        texts = ([str(meta)] if isinstance(meta, str) and meta.strip() else []) + own.get(item, [])
        documents[item] = (title if isinstance(title, str) else "", texts)
    return documents


def build_vocabulary(
    items: pd.DataFrame,
    descriptions: pd.DataFrame | None = None,
    reviews: pd.DataFrame | None = None,
    settings: VocabularyConfig | None = None,
) -> FeatureVocabulary:
    """The feature vocabulary of a dataset's items (method in the module docstring)."""
    settings = settings or VocabularyConfig()
    if "item_id" not in items.columns or "title" not in items.columns:
        raise DataError("items.parquet", f"expected columns item_id and title, got {list(items.columns)}")
    documents = item_documents(items, descriptions, reviews)
    if not documents:
        raise DataError("items.parquet", "no items: the feature vocabulary needs item texts")
    corpus_tokens = {
        token
        for title, texts in documents.values()
        for text in (title, *texts)
        for tokens in segments(text)
        for token in tokens
        if is_content(token, settings.min_chars)
    }
    forms = plural_forms(corpus_tokens)

    def grams(text: str) -> set[str]:
        return ngrams(text, max_ngram=settings.max_ngram, min_chars=settings.min_chars, forms=forms)

    own_grams = {
        item: set().union(*(grams(t) for t in texts)) if texts else set() for item, (_, texts) in documents.items()
    }
    frequency: Counter[str] = Counter()
    for item, (title, _) in documents.items():
        frequency.update(own_grams[item] | grams(title))
    ceiling = settings.max_df * len(documents)
    features = {gram: count for gram, count in frequency.items() if settings.min_df <= count <= ceiling}
    if not features:
        log.warning(
            "feature vocabulary: no n-gram occurs in %d..%.0f of the %d items (min_df/max_df); "
            "the feature metrics will be empty",
            settings.min_df,
            ceiling,
            len(documents),
        )
    item_features = {item: frozenset(g for g in found if g in features) for item, found in own_grams.items()}
    used = {part for feature in features for part in feature.split(" ")}
    return FeatureVocabulary(
        features=features,
        forms={plural: singular for plural, singular in forms.items() if singular in used},
        item_features=item_features,
        settings=settings,
        documents=len(documents),
    )


def read_item_frames(work_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """(items, descriptions, item_reviews) of a dataset's work folder; the last two when present."""
    work_dir = Path(work_dir)
    path = work_dir / "items.parquet"
    if not path.is_file():
        raise DataError(path, "file not found; run `reasoningrec ingest` first")
    optional = [work_dir / name for name in ("descriptions.parquet", "item_reviews.parquet")]
    return pd.read_parquet(path), *(pd.read_parquet(p) if p.is_file() else None for p in optional)


def vocabulary_from_work_dir(work_dir: str | Path, settings: VocabularyConfig | None = None) -> FeatureVocabulary:
    """:func:`build_vocabulary` on ``items``/``descriptions``/``item_reviews.parquet`` of a work folder."""
    return build_vocabulary(*read_item_frames(work_dir), settings=settings)


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------


def write_vocabulary(path: str | Path, vocabulary: FeatureVocabulary) -> Path:
    """Write the vocabulary as JSON (atomically), with its content digest."""
    from reasoningrec.io import write_json

    return write_json(path, {**vocabulary.payload(), "digest": vocabulary.digest})


def read_vocabulary(path: str | Path, settings: VocabularyConfig | None = None) -> FeatureVocabulary:
    """Read a stored vocabulary, checking its format, method version, stop list and digest.

    With ``settings``, a vocabulary built with other settings is an error too (rebuild it).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "file not found; build it with `reasoningrec vocabulary -d <dataset>`") from None
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(path, f"not a feature vocabulary (expected format {FORMAT!r})", field="format")
    if data.get("method_version") != METHOD_VERSION:
        raise DataError(
            path,
            f"built by method version {data.get('method_version')}, this code is version {METHOD_VERSION}; rebuild it",
            field="method_version",
        )
    stored_digest = data.pop("digest", None)
    if stored_digest != content_digest(data):
        raise DataError(path, "content does not match its digest (edited or truncated); rebuild it", field="digest")
    if data.get("stopwords_digest") != stopwords_digest():
        raise DataError(path, "built with another stop-word list; rebuild it", field="stopwords_digest")
    stored_settings = VocabularyConfig.model_validate(data["settings"])
    if settings is not None and stored_settings != settings:
        raise DataError(
            path,
            f"built with settings {stored_settings.model_dump()}, expected {settings.model_dump()}; rebuild it",
            field="settings",
        )
    return FeatureVocabulary(
        features={str(k): int(v) for k, v in data["features"].items()},
        forms=dict(data["forms"]),
        item_features={str(k): frozenset(v) for k, v in data["item_features"].items()},
        settings=stored_settings,
        documents=int(data["documents"]),
        stopwords_digest=data["stopwords_digest"],
        method_version=int(data["method_version"]),
    )


class VocabularySummary(Summary):
    """``vocabulary.json``: the size of a dataset's feature vocabulary and its content digest."""

    dataset: str
    features: int
    items: int
    digest: str
    method_version: int


def run_vocabulary(params, dataset: str, out_dir: str | Path | None = None) -> VocabularySummary:
    """The vocabulary stage: ``feature_vocabulary.json`` of a dataset's work folder, and its summary
    ``vocabulary.json`` (features, items, the content digest)."""
    work = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    vocabulary = vocabulary_from_work_dir(work, params.explanations.vocabulary)
    write_vocabulary(work / VOCABULARY_FILE, vocabulary)
    summary = VocabularySummary(
        dataset=dataset,
        features=len(vocabulary),
        items=vocabulary.documents,
        digest=vocabulary.digest,
        method_version=vocabulary.method_version,
    )
    summary.write(work / "vocabulary.json")
    return summary
