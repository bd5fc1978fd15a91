"""Baselines on the same samples, splits and metrics as ReasoningRec: SASRec, Caser and two heuristics.

Modules: :mod:`~.stage` (the stage entry point), :mod:`~.common` (inputs, training loop),
:mod:`~.sasrec`, :mod:`~.caser`, :mod:`~.layers`, :mod:`~.heuristics`.
"""

from reasoningrec.baselines.stage import BaselinesSummary, log_saved_baselines, run_baselines

__all__ = ["BaselinesSummary", "log_saved_baselines", "run_baselines"]
