"""What each evaluation population asks of a method: test users, like-rate, one-label histories, and the
AUC of the history like-rate heuristic, for ``all`` and ``paper`` (docs/paper_population.md).

    python -m reasoningrec.data.population_report --report
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from reasoningrec.data.population import PAPER_SPLITS, SCORED_SEED, read_authors_records


def scored_subset(n_records: int, k: int, seed: int = SCORED_SEED) -> list[int]:
    """Indices of the records ``random.seed(seed); random.sample(records, k)`` picks (the authors' scoring)."""
    rng = random.Random(seed)
    return rng.sample(range(n_records), min(k, n_records))


def population_stats(rows: pd.DataFrame, fallback: float) -> dict:
    """Test users, like-rate, share of one-label histories, AUC of the history like-rate heuristic."""
    from reasoningrec.baselines.heuristics import user_like_rate
    from reasoningrec.metrics import auc

    labels = rows["label"].astype(int).to_numpy()
    one_label = rows["history_labels"].map(lambda h: len(set(h)) == 1)
    return {
        "users": len(rows),
        "like_rate": round(float(labels.mean()), 3),
        "one_label_history": round(float(one_label.mean()), 3),
        "user_like_rate_auc": round(auc(labels, user_like_rate(rows, fallback)), 3),
    }


SCORED_SAMPLE = {"beauty": 600, "fashion": 800}


def evaluated_populations(ours: pd.DataFrame, paper: pd.DataFrame, scored: int | None) -> dict[str, pd.DataFrame]:
    """The test rows of each population: all, paper, the users paper leaves out, the authors' scored sample.

    ``paper``'s rows are put in the authors' record order (ascending user) before sampling.
    """
    from reasoningrec.data.kcore import natural_order

    test_all, test_paper = ours[ours["split"] == "test"], paper[paper["split"] == "test"]
    test_paper = test_paper.iloc[natural_order(test_paper["user_id"].astype(str).to_numpy())]
    populations = {
        "all": test_all,
        "paper": test_paper,
        "all minus paper": test_all[~test_all["user_id"].isin(set(test_paper["user_id"]))],
    }
    if scored is not None:
        populations[f"paper, scored sample ({scored}, seed {SCORED_SEED})"] = test_paper.iloc[
            scored_subset(len(test_paper), scored)
        ]
    return populations


def repeated_inputs(raw: Mapping[str, Sequence[Mapping]]) -> dict[str, int]:
    """Per valid/test split: how many records' inputs are, verbatim, the input of a training record."""
    train = {r["input"] for r in raw.get("train", [])}
    return {split: sum(r["input"] in train for r in raw[split]) for split in PAPER_SPLITS if split in raw}


def report(params, datasets: Sequence[str]) -> list[dict]:
    """Test-split statistics of both populations per dataset (see :func:`evaluated_populations`)."""
    import tempfile

    from reasoningrec.data.frames import load_interactions
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.data.prepare import prepare_frames

    lines = []
    for dataset in datasets:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            run_ingest(params, dataset, out)
            data = load_interactions(out / "interactions.parquet", "ingest failed")
            ours, _, _ = prepare_frames(data, params, dataset)
            paper, _, _ = prepare_frames(data, params, dataset, authors=read_authors_records(params, dataset, out))
        # The heuristic's fallback (never used here: every test history has items) is the global like-rate.
        fallback = float((data.rating > params.prepare.like_threshold).mean())
        populations = evaluated_populations(ours.to_pandas(), paper.to_pandas(), SCORED_SAMPLE.get(dataset))
        for name, rows in populations.items():
            lines.append({"dataset": dataset, "population": name, **population_stats(rows, fallback)})
        lines[-len(populations)]["repeated_inputs"] = _repeated_inputs_of(params, dataset)
    return lines


def _repeated_inputs_of(params, dataset: str) -> dict[str, int]:
    from reasoningrec.importer.files import SFT_FILE, read_records, texts_dir

    folder = texts_dir(params, dataset)
    raw = {split: read_records(folder / SFT_FILE.format(split=split)) for split in ("train", *PAPER_SPLITS)}
    return {split: f"{n} of {len(raw[split])}" for split, n in repeated_inputs(raw).items()}


def format_report(lines: Sequence[dict]) -> str:
    head = "| dataset | population | test users | like-rate | one-label histories | AUC user like-rate |"
    out = [head, "|---|---|---:|---:|---:|---:|"]
    for line in lines:
        out.append(
            f"| {line['dataset']} | {line['population']} | {line['users']:,} | {line['like_rate']:.3f} | "
            f"{line['one_label_history']:.3f} | {line['user_like_rate_auc']:.3f} |"
        )
    for line in lines:
        if "repeated_inputs" in line:
            repeats = ", ".join(f"{split} {n}" for split, n in line["repeated_inputs"].items())
            out.append(f"\n{line['dataset']}: records whose input is verbatim a training record's input: {repeats}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reasoningrec.data.population_report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--report", action="store_true", help="print the populations' test statistics")
    parser.add_argument("--params", default=None, help="params file (default: $REASONINGREC_PARAMS or params.yaml)")
    parser.add_argument("--datasets", nargs="+", default=["beauty", "fashion"])
    args = parser.parse_args(argv)
    if not args.report:
        parser.print_help()
        return 2
    from reasoningrec.config import load_params

    # The populations of the whole datasets, whatever slice params.yaml's main job takes.
    params = load_params(args.params, assignments=["prepare.max_users=null"])
    print(format_report(report(params, args.datasets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
