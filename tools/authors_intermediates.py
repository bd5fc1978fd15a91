"""Check the paper population against the authors' own intermediate files (user ids included).

The authors' development repository (github.com/millenniumbismay/llm-based-seq-rec) keeps, per
dataset, the reasoning prompts and the generated reasoning of every split as pickled dicts keyed by
user id (``<ds>/finetune_reasoning_rec_2/reasoning_dataset/{reasoning_prompt_data,reasoning_data}``).
The SFT records carry no user id, but each record's ``output`` is a fixed rewrite of one user's
reasoning (``Prediction: <last word>`` + the other lines joined), so the dicts give every record's
user. This prints, per dataset and split: users with a prompt, users with a reasoning, the users
whose prompt got no reasoning (and whether they are the last prompts), and how many of our
``paper`` rows have the record's user.

    python -m tools.authors_intermediates --repo /path/to/llm-based-seq-rec [--commit a9c826f]

``--repo`` is a clone (bare or not) read with ``git show``. The pickles are read with an
unpickler that refuses every class: only dicts, lists and strings load.
"""

from __future__ import annotations

import argparse
import io
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

COMMIT = "a9c826f77b11452604497e0ccf0ce74c4b980850"
FOLDER = "{ds}/finetune_reasoning_rec_2/reasoning_dataset"
PROMPTS = FOLDER + "/reasoning_prompt_data/reasoning_prompt_{split}.pkl"
REASONING = FOLDER + "/reasoning_data/reasoning_{split}_dict.pkl"


class _DataOnly(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is read")


def read_pickle(data: bytes):
    """Plain data (dict, list, str, numbers) from pickle bytes; any class is refused."""
    return _DataOnly(io.BytesIO(data)).load()


def git_show(repo: Path, commit: str, path: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True).stdout


def rewritten_output(reasoning: str) -> str:
    """The record ``output`` the authors made of a reasoning text (their create_final_data cell 12)."""
    head = f"Prediction: {reasoning.split(' ')[-1]} \n"
    return head + " ".join(line.strip() for line in reasoning.split("\n")[:-1])


def record_users(outputs: Sequence[str], reasoning: Mapping[str, str]) -> list[str | None]:
    """The user of each record: the smallest user above the previous record's whose reasoning rewrites to it.

    Users with identical reasoning (identical histories) are told apart by the ascending record order.
    """
    by_output: dict[str, list[int]] = {}
    for user, text in reasoning.items():
        by_output.setdefault(rewritten_output(text), []).append(int(user))
    users: list[str | None] = []
    previous = -1
    for output in outputs:
        later = sorted(u for u in by_output.get(output, []) if u > previous)
        users.append(str(later[0]) if later else None)
        previous = later[0] if later else previous
    return users


def paper_users(params, dataset: str) -> dict[str, list[str]]:
    """Our paper population's valid/test users, in ascending order (ingest + prepare in a temp dir)."""
    import pandas as pd

    from reasoningrec.data.ingest import read_interactions, run_ingest
    from reasoningrec.data.population import PAPER_SPLITS, read_authors_records
    from reasoningrec.data.prepare import prepare_frames

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        run_ingest(params, dataset, out)
        source = out / "interactions.parquet"
        samples, _, _ = prepare_frames(
            read_interactions(source), params, dataset, source, authors=read_authors_records(params, dataset, out)
        )
    frame: pd.DataFrame = samples.to_pandas()
    return {s: sorted(frame.loc[frame["split"] == s, "user_id"], key=int) for s in PAPER_SPLITS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="clone of millenniumbismay/llm-based-seq-rec")
    parser.add_argument("--commit", default=COMMIT)
    parser.add_argument("--datasets", nargs="+", default=["beauty", "fashion"])
    parser.add_argument("--params", default=None)
    args = parser.parse_args(argv)

    from reasoningrec.config import load_params
    from reasoningrec.importer.files import SFT_FILE, read_records, texts_dir

    params = load_params(args.params)
    for ds in args.datasets:
        ours = paper_users(params, ds)
        for split in ("train", "valid", "test"):
            prompts = read_pickle(git_show(args.repo, args.commit, PROMPTS.format(ds=ds, split=split)))
            reasoning = read_pickle(git_show(args.repo, args.commit, REASONING.format(ds=ds, split=split)))
            keys = list(prompts)
            missing = [u for u in keys if u not in reasoning]
            tail = missing == keys[len(keys) - len(missing) :]
            records = read_records(texts_dir(params, ds) / SFT_FILE.format(split=split))
            users = record_users([r["output"] for r in records], reasoning)
            line = (
                f"{ds} {split}: prompts {len(prompts)}, reasoning {len(reasoning)}, records {len(records)} "
                f"(user found for {sum(u is not None for u in users)}); prompts without reasoning "
                f"{len(missing)} {'= the last prompts' if tail else '(not the last prompts)'} {missing}"
            )
            if split in ours:
                same = sum(a == b for a, b in zip(users, ours[split], strict=False))
                line += f"; paper rows with the record's user: {same} of {len(records)}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
