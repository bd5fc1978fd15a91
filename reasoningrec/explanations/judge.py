"""An optional LLM judge of explanations: a fixed, versioned rubric scored 1-5 on four criteria.

The rubric is the template ``reasoningrec/prompts/judge/rubric_<version>.txt``: it shows the judge
what the recommender was shown (profile, history with labels, target), the stated prediction and the
explanation, and asks for exactly four lines ``grounded: N``, ``personalised: N``, ``specific: N``,
``consistent: N`` (N in 1..5). Requests go through :func:`reasoningrec.llm.make_backend` (an
OpenAI-compatible server by default) behind the response cache, so a rerun sends nothing. A reply
that does not give each criterion exactly one score in 1..5 is counted as bad, never guessed.
Off by default (``explanations.judge.enabled``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from reasoningrec.config import JudgeConfig
from reasoningrec.errors import ConfigError, DataError
from reasoningrec.explanations.context import DatasetFrames, ExplanationContext, build_contexts

CRITERIA = ("grounded", "personalised", "specific", "consistent")
# Caps on what reaches the judge, in words: enough to grade, bounded so one text cannot crowd out the rubric.
TITLE_WORDS, DESCRIPTION_WORDS, PROFILE_WORDS, EXPLANATION_WORDS = 40, 60, 200, 400
_SCORE = re.compile(
    r"\b(grounded|personali[sz]ed|specific|consistent)\b[\s*_`\"']*[:=\-\u2013]\s*[*_`\"']*\s*([0-9]+(?:\.[0-9]+)?)",
    re.IGNORECASE,
)


def rubric_template(version: str) -> str:
    """The template file of a rubric version; a clear error when there is none."""
    from reasoningrec.prompts import PROMPTS_DIR

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", version):
        raise ConfigError(f"explanations.judge.rubric: {version!r} is not a rubric version name")
    name = f"judge/rubric_{version}.txt"
    if not (PROMPTS_DIR / name).is_file():
        known = sorted(p.stem.removeprefix("rubric_") for p in (PROMPTS_DIR / "judge").glob("rubric_*.txt"))
        raise ConfigError(f"explanations.judge.rubric: no rubric {version!r} (known: {', '.join(known)})")
    return name


def judge_messages(context: ExplanationContext, explanation: str, prediction: int, version: str = "v1") -> list[dict]:
    """The chat messages asking the judge to grade one explanation (untrusted texts sanitised)."""
    from reasoningrec.prompts import render_file
    from reasoningrec.synthesis.text import sanitize_untrusted

    def item(entry, liked=None):
        return {
            "title": sanitize_untrusted(entry.title, TITLE_WORDS),
            "description": sanitize_untrusted(entry.description, DESCRIPTION_WORDS),
            "liked": liked,
        }

    system, user = render_file(
        rubric_template(version),
        profile=sanitize_untrusted(context.profile, PROFILE_WORDS),
        history=[item(h, h.label == 1) for h in context.history],
        target=item(context.target),
        prediction=int(prediction) == 1,
        explanation=sanitize_untrusted(explanation, EXPLANATION_WORDS) or "(empty)",
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_scores(reply: str) -> dict[str, int] | None:
    """``{criterion: score}`` from a judge reply, or None when it is bad.

    Accepted: one ``name: N`` per criterion, in any order and case, with optional markdown (``**``),
    list dashes, ``=`` or ``-`` for ``:``, quotes (JSON ``"grounded": 4`` parses too) and ``personalized``.
    Bad: a criterion missing, given twice with different scores, or a score that is not a whole
    number in 1..5 (``4.5``, ``0``, ``10``).
    """
    found: dict[str, int] = {}
    for match in _SCORE.finditer(reply or ""):
        name = match.group(1).lower().replace("personalized", "personalised")
        raw = match.group(2)
        if "." in raw and float(raw) != int(float(raw)):
            return None
        value = int(float(raw))
        if not 1 <= value <= 5 or found.get(name, value) != value:
            return None
        found[name] = value
    if set(found) != set(CRITERIA):
        return None
    return {name: found[name] for name in CRITERIA}


def summarise_judgements(scores: Sequence[dict[str, int] | None]) -> dict[str, float]:
    """Mean score per criterion over the good replies, the number judged and of bad replies."""
    good = [s for s in scores if s is not None]
    out = {f"judge_{name}": (sum(s[name] for s in good) / len(good)) if good else math.nan for name in CRITERIA}
    out["judge_judged"] = float(len(scores))
    out["judge_bad_replies"] = float(len(scores) - len(good))
    return out


def judge_explanations(
    explanations: pd.DataFrame,
    frames: DatasetFrames | str | Path,
    config: JudgeConfig,
    *,
    cache_dir: str | Path | None,
    variant: str = "full",
    backend=None,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Grade explanations with the LLM judge: (summary, per-row frame of scores and raw replies).

    ``explanations``: ``user_id``, ``split``, ``target_item``, ``explanation`` and ``prediction``
    (the label the explanation states: 1 Yes, 0 No); the first ``config.limit`` rows are judged.
    ``backend``: a ready :class:`~reasoningrec.llm.ChatBackend` (default: ``make_backend(config.llm,
    cache_dir)``). Server failures after the backend's retries raise :class:`LLMBackendError`.
    This grades whatever it is given; callers decide from ``config.enabled`` whether to call it.
    """
    from reasoningrec.explanations.quality import explanation_text
    from reasoningrec.llm import GenerationSettings, make_backend

    if "prediction" not in explanations.columns:
        raise DataError(
            "explanations", "the judge needs a 'prediction' column (1 = Yes, 0 = No: the label the explanation states)"
        )
    if not isinstance(frames, DatasetFrames):
        frames = DatasetFrames.from_work_dir(frames)
    rows = explanations.reset_index(drop=True)
    if config.limit is not None:
        rows = rows.head(config.limit)
    contexts = build_contexts(rows, frames, {}, variant)
    texts = [explanation_text(v) for v in rows["explanation"]]
    batch = [
        judge_messages(context, text, int(prediction), config.rubric)
        for context, text, prediction in zip(contexts, texts, rows["prediction"], strict=True)
    ]
    backend = backend or make_backend(config.llm, Path(cache_dir) if cache_dir is not None else None)
    settings = GenerationSettings(
        temperature=config.temperature, top_p=1.0, max_new_tokens=config.max_new_tokens, seed=config.seed
    )
    replies = backend.generate(batch, settings, progress="judge") if batch else []
    scores = [None if g.finish_reason == "error" else parse_scores(g.text) for g in replies]
    per_row = rows[["user_id", "split", "target_item"]].copy()
    for name in CRITERIA:
        per_row[f"judge_{name}"] = [math.nan if s is None else float(s[name]) for s in scores]
    per_row["judge_valid"] = [s is not None for s in scores]
    per_row["judge_reply"] = [g.text for g in replies]
    return summarise_judgements(scores), per_row
