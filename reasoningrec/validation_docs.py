"""Great Expectations Data Docs of the validation stages: one site per dataset and stage, with history.

Each run's results are kept as GX JSON in ``validation/gx_results_<stage>/`` (a filesystem
validation results store) and the site ``validation/data_docs_<stage>/`` is rebuilt from that store,
so its index lists every kept run, newest first, and each run keeps its own page. A run is named
``<dataset>-<stage>-<UTC time>``; each validated table is a data asset named after the dataset and
the file (``fashion/interactions.parquet``, ``fashion/interactions.parquet (k-core counts)``).
The last :data:`KEEP_RUNS` runs are kept. Pages load their scripts and styles from the site itself
(:func:`reasoningrec.offline_html.make_site_offline`), so they render from ``file://`` offline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SITE_NAME = "reasoningrec"
STORE_NAME = "reasoningrec_history"
KEEP_RUNS = 30  # per dataset and stage; each run adds ~30-60 kB of JSON and HTML per suite


@dataclass(frozen=True)
class DataDocs:
    """Where one validation stage's Data Docs and result history live, and this run's name."""

    site: Path
    results: Path
    prefix: str  # every run name of this site starts with it: ``<dataset>-<stage>-``
    run_time: dt.datetime

    @property
    def run_name(self) -> str:
        return f"{self.prefix}{self.run_time.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"

    @classmethod
    def for_stage(cls, folder: Path, dataset: str, stage: str, now: dt.datetime | None = None) -> DataDocs:
        now = now or dt.datetime.now(dt.UTC)
        return cls(
            site=folder / f"data_docs_{stage}",
            results=folder / f"gx_results_{stage}",
            prefix=f"{dataset}-{stage}-",
            run_time=now,
        )


def asset_name(dataset: str, table: str) -> str:
    """The data asset a suite ran on: ``<dataset>/<file>``, with what was derived from it in brackets."""
    return f"{dataset}/{table}"


def attach(context: Any, docs: DataDocs) -> None:
    """Give an (ephemeral) GX context the filesystem results store and the site built from it."""
    docs.results.mkdir(parents=True, exist_ok=True)
    context.add_store(
        STORE_NAME,
        {
            "class_name": "ValidationResultsStore",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs.results.resolve()),
            },
        },
    )
    context.add_data_docs_site(
        site_name=SITE_NAME,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs.site.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_cta_footer": False},
            "site_section_builders": {
                "validations": {
                    "source_store_name": STORE_NAME,
                    "run_name_filter": {"matches_regex": f"^{re.escape(docs.prefix)}"},
                },
                "profiling": "False",  # (GX would list runs whose name contains "profiling" there)
            },
        },
    )


def keep(context: Any, result: Any, asset: str) -> None:
    """Store one suite's result in the history, with its data asset named (GX leaves it empty for
    a dataframe: the pages would say "Data asset: None")."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    result.meta.setdefault("batch_spec", {})["data_asset_name"] = asset
    run_id = result.meta["run_id"]
    batch_id = result.meta["active_batch_definition"]
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
        run_id=run_id,
        batch_identifier=f"{batch_id['datasource_name']}-{batch_id['data_asset_name']}",
    )
    context.stores[STORE_NAME].set(key, result)


def prune(results: Path, keep_runs: int = KEEP_RUNS) -> list[str]:
    """Drop all but the newest ``keep_runs`` runs from the results history (GX then drops their
    pages when the site is built); returns the removed runs as ``<run name>/<run time>``.
    Layout: ``<suite>/<run name>/<run time>/<batch>.json``; the suites of one run share its time."""
    runs = sorted(
        {(folder.name, folder.parent.name) for folder in results.glob("*/*/*") if folder.is_dir()}, reverse=True
    )
    removed = []
    for run_time, name in runs[keep_runs:]:
        for folder in results.glob(f"*/{name}/{run_time}"):
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.parent.rmdir()  # the run name's folder, once it holds no other run
        removed.append(f"{name}/{run_time}")
    return sorted(removed)


def build(context: Any, docs: DataDocs) -> Path:
    """Prune the history, build the site from it and make its pages offline; the index page."""
    import warnings

    from reasoningrec.offline_html import make_site_offline

    prune(docs.results, KEEP_RUNS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context.build_data_docs(site_names=[SITE_NAME])
    make_site_offline(docs.site)
    return docs.site / "index.html"
