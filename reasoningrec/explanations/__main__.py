"""``python -m reasoningrec.explanations``: build a dataset's feature vocabulary, and measure explanations.

    python -m reasoningrec.explanations vocabulary --dataset beauty
    python -m reasoningrec.explanations reference --dataset beauty --split test
    python -m reasoningrec.explanations reference --dataset beauty --control shuffled
    python -m reasoningrec.explanations score --dataset beauty --explanations predictions.parquet --variant full
    python -m reasoningrec.explanations reference --dataset beauty --judge   # + the LLM judge (explanations.judge)

``reference`` measures the reasoning ground truth (``reasoning.parquet``, rows flagged valid) with
the same metrics as generated explanations; ``--control shuffled`` pairs every reasoning with the
next row's user and target instead (a sanity floor: grounding must drop). ``--work-dir`` names the
dataset's folder directly instead of ``--dataset`` (``<paths.work_dir>/<dataset>``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from reasoningrec.errors import DataError, ReasoningRecError


def reference_explanations(work_dir: Path, split: str, control: str = "none") -> pd.DataFrame:
    """The valid reasoning rows of ``split`` as explanations (``prediction`` = the label they argue
    for); ``control="shuffled"`` moves each reasoning to the next row's user and target."""
    path = work_dir / "reasoning.parquet"
    if not path.is_file():
        raise DataError(path, "file not found; run `reasoningrec import-texts` or `reasoningrec reason` first")
    frame = pd.read_parquet(path)
    usable = frame["valid"].fillna(False).astype(bool) if "valid" in frame.columns else True
    rows = frame[usable & (frame["split"] == split)].reset_index(drop=True)
    out = rows[["user_id", "split", "target_item"]].copy()
    out["explanation"] = rows["reasoning"].astype(object)
    out["prediction"] = rows["label"].astype(int)
    if control == "shuffled":
        for column in ("explanation", "prediction"):
            out[column] = np.roll(out[column].to_numpy(), len(out) // 2)
    return out


def _work_dir(args, params) -> Path:
    if args.work_dir:
        return Path(args.work_dir)
    if not args.dataset:
        raise SystemExit("give --dataset NAME or --work-dir PATH")
    params.dataset(args.dataset)  # a clear error for an unknown name
    return params.work_dir(args.dataset)


def _vocabulary(args, params, work_dir: Path):
    from reasoningrec.explanations.features import read_vocabulary, vocabulary_from_work_dir

    settings = params.explanations.vocabulary
    if args.vocabulary:
        return read_vocabulary(args.vocabulary, settings)
    return vocabulary_from_work_dir(work_dir, settings)


def main(argv: list[str] | None = None) -> int:
    from reasoningrec.config import load_params
    from reasoningrec.io import write_json

    parser = argparse.ArgumentParser(prog="python -m reasoningrec.explanations", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("vocabulary", "reference", "score"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--dataset", help="dataset name of params.yaml (work folder <paths.work_dir>/<dataset>)")
        cmd.add_argument("--work-dir", help="the dataset's work folder (instead of --dataset)")
        cmd.add_argument("--params", help="params file (default: $REASONINGREC_PARAMS or ./params.yaml)")
        cmd.add_argument("--out", help="write the result here as JSON")
        if name != "vocabulary":
            cmd.add_argument("--vocabulary", help="a stored vocabulary JSON (default: build it from the work folder)")
            cmd.add_argument("--variant", default="full", help="record variant the prompts were built with")
            cmd.add_argument(
                "--judge",
                action="store_true",
                help="also grade with the LLM judge of params.yaml explanations.judge (needs a 'prediction' column)",
            )
    sub.choices["reference"].add_argument("--split", default="test", choices=["train", "valid", "test"])
    sub.choices["reference"].add_argument("--control", default="none", choices=["none", "shuffled"])
    sub.choices["score"].add_argument(
        "--explanations", required=True, help="parquet with user_id, split, target_item, explanation"
    )
    args = parser.parse_args(argv)

    try:
        params = load_params(args.params)
        work_dir = _work_dir(args, params)
        if args.command == "vocabulary":
            from reasoningrec.explanations.features import (
                VOCABULARY_FILE,
                vocabulary_from_work_dir,
                write_vocabulary,
            )

            vocabulary = vocabulary_from_work_dir(work_dir, params.explanations.vocabulary)
            path = write_vocabulary(Path(args.out) if args.out else work_dir / VOCABULARY_FILE, vocabulary)
            print(
                json.dumps(
                    {
                        "path": str(path),
                        "features": len(vocabulary),
                        "items": vocabulary.documents,
                        "digest": vocabulary.digest,
                    },
                    indent=2,
                )
            )
            return 0

        from reasoningrec.explanations.quality import explanation_metrics

        vocabulary = _vocabulary(args, params, work_dir)
        if args.command == "reference":
            explanations = reference_explanations(work_dir, args.split, args.control)
        else:
            explanations = pd.read_parquet(args.explanations)
        summary, _ = explanation_metrics(
            explanations, work_dir, vocabulary, variant=args.variant, settings=params.explanations
        )
        if args.judge:
            from reasoningrec.explanations.judge import judge_explanations

            judged, _ = judge_explanations(
                explanations,
                work_dir,
                params.explanations.judge,
                cache_dir=params.paths.cache_dir,
                variant=args.variant,
            )
            summary = {**summary, **judged}
        result = {
            "work_dir": str(work_dir),
            "variant": args.variant,
            "vocabulary_digest": vocabulary.digest,
            "summary": summary,
        }
        if args.command == "reference":
            result.update(split=args.split, control=args.control)
        if args.out:
            write_json(args.out, result)
        print(json.dumps(result, indent=2, default=float))
        return 0
    except ReasoningRecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
