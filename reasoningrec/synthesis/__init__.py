"""LLM synthesis: item descriptions, user profiles and label-conditioned reasoning ground truth.

Modules: ``text`` (sanitising and post-processing), ``guards`` (output quality checks),
``prompting`` (pure prompt builders over ``reasoningrec/prompts``), ``generate`` (chunked guarded
generation with one retry), ``stages`` (the ``run_*`` stage entry points).
"""

from __future__ import annotations

from reasoningrec.synthesis.stages import run_describe, run_profile, run_reason

__all__ = ["run_describe", "run_profile", "run_reason"]
