"""Ingest and prepare on Dask dataframes: the path for a log that outgrows one machine (optional extra).

``pip install "reasoningrec[distributed]"``. The kernels are the single-machine ones, run per
partition (docs/operations.md, "Beyond one machine"):

- ingest: ``dd.read_csv`` splits the CSV into blocks; each block goes through the same parse
  (:func:`readers.numeric_column`, :func:`readers.unix_seconds`) and contract checks
  (:func:`contract.check_chunk`); the output is a Parquet dataset (one file per partition) with the
  contract's schema. Messages name the partition and the record in it, not the file's line.
- prepare: rows keep their global file order (a column); a shuffle puts each user's rows in one
  partition, where duplicate removal, the user k-core and the chronological samples are exactly
  the single-machine ones (:func:`prepare.filter_interactions`, :func:`split.samples_from_arrays`).
  The ``iterative`` k-core needs global item counts each round and is not offered here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.errors import ConfigError

ORDER = "_order"


def _dask():
    try:
        import dask.dataframe as dd
    except ImportError:
        from reasoningrec.errors import MissingDependency

        raise MissingDependency('the Dask path needs dask: pip install "reasoningrec[distributed]"') from None
    return dd


def _checked_partition(
    part: pd.DataFrame, names: dict, path: str, low: float, high: float, partition_info=None
) -> pd.DataFrame:
    """One block of the CSV through the single-machine parse and contract checks."""
    from reasoningrec.data.contract import check_chunk
    from reasoningrec.data.readers import nonempty_text, numeric_column, unix_seconds
    from reasoningrec.data.sources import Chunk

    number = (partition_info or {}).get("number", 0)
    where = lambda i: {"record": int(i)}  # noqa: E731
    source = f"{path} (partition {number})"
    review = part[names["review"]] if names["review"] in part else pd.Series([None] * len(part), dtype=object)
    table = pa.table(
        {
            "user_id": pa.array(part[names["user"]].astype(object), pa.string()),
            "item_id": pa.array(part[names["item"]].astype(object), pa.string()),
            "rating": pa.array(
                numeric_column(source, part[names["rating"]].to_numpy(dtype=object), where, names["rating"])
            ),
            "timestamp": pa.array(
                unix_seconds(
                    source, pa.array(part[names["timestamp"]].astype(object), pa.string()), where, names["timestamp"]
                )
            ),
            "review": nonempty_text(pa.array(review.astype(object), pa.string())),
        }
    )
    fields = {
        "user_id": names["user"],
        "item_id": names["item"],
        "rating": names["rating"],
        "timestamp": names["timestamp"],
    }
    checked, _ = check_chunk(Chunk(table, source, where, fields), low, high)
    return checked.cast(
        pa.schema([(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type) for f in checked.schema])
    ).to_pandas()


def ingest_csv(params, dataset: str, out: Path, blocksize: int | str = "64MB") -> dict:
    """The generic table source's CSV -> a Parquet dataset ``out`` (one file per partition)."""
    from reasoningrec.data.contract import INTERACTIONS_SCHEMA
    from reasoningrec.data.ingest import raw_path
    from reasoningrec.data.readers import rating_range

    dd = _dask()
    config = params.dataset(dataset)
    if config.source != "table":
        raise ConfigError(f"params.yaml: datasets.{dataset}: the Dask path reads the generic table source")
    path = raw_path(params, dataset)
    names = {key: config.columns.get(key, key) for key in ("user", "item", "rating", "timestamp", "review")}
    frame = dd.read_csv(str(path), dtype=str, keep_default_na=False, blocksize=blocksize)
    low, high = rating_range(params)
    meta = pd.DataFrame(
        {
            "user_id": pd.Series(dtype=object),
            "item_id": pd.Series(dtype=object),
            "rating": pd.Series(dtype="float64"),
            "timestamp": pd.Series(dtype="int64"),
            "review": pd.Series(dtype=object),
        }
    )
    checked = frame.map_partitions(_checked_partition, names, str(path), low, high, meta=meta)
    checked.to_parquet(str(out), write_index=False, schema=INTERACTIONS_SCHEMA)
    return {"dataset": dataset, "partitions": int(frame.npartitions), "path": str(out)}


def _samples_partition(
    part: pd.DataFrame, k: int, dedup: bool, like_threshold: float, history_len: int, profile_items: int
) -> pd.DataFrame:
    """One partition's users (all their rows) -> their samples, with the single-machine kernels."""
    from reasoningrec.data.frames import Interactions, codes_of
    from reasoningrec.data.kcore import kcore_mask, order_by, repeat_mask
    from reasoningrec.data.split import SAMPLE_SCHEMA, lexicographic_rank, samples_from_arrays

    part = part.sort_values(ORDER, kind="stable")
    users, user_ids = codes_of(pa.array(part["user_id"].astype(object), pa.string()))
    items, item_ids = codes_of(pa.array(part["item_id"].astype(object), pa.string()))
    data = Interactions(
        None,
        users,
        user_ids,
        items,
        item_ids,
        part["rating"].to_numpy(dtype=float),
        part["timestamp"].to_numpy(dtype=np.int64),
    )
    rank = lexicographic_rank(data.user_ids)
    order = order_by(rank[data.users], data.timestamp)
    keep = ~repeat_mask(rank[data.users], data.items, data.timestamp, order) if dedup else np.ones(len(data), bool)
    keep = kcore_mask(data.users, data.items, keep, k, "user")
    rows = order[keep[order]]
    labels = (data.rating > like_threshold).astype(np.int8)
    table, _ = samples_from_arrays(
        rank[data.users[rows]],
        data.items[rows],
        data.rating[rows],
        data.timestamp[rows],
        labels[rows],
        data.user_ids,
        data.item_ids,
        np.argsort(rank),
        history_len,
        profile_items,
    )
    return table.cast(SAMPLE_SCHEMA).to_pandas() if len(part) else SAMPLE_SCHEMA.empty_table().to_pandas()


def prepare_samples(params, dataset: str, interactions: Path, npartitions: int | None = None) -> pa.Table:
    """The samples of ``prepare`` from an interactions Parquet dataset, users in id order."""
    from reasoningrec.data.split import SAMPLE_SCHEMA

    dd = _dask()
    config, settings = params.dataset(dataset), params.prepare
    if config.kcore.mode != "user":
        raise ConfigError(f"params.yaml: datasets.{dataset}.kcore.mode: the Dask path offers the user k-core only")
    frame = dd.read_parquet(str(interactions), columns=["user_id", "item_id", "rating", "timestamp"])
    sizes = frame.map_partitions(len).compute().to_numpy()
    starts = np.r_[0, np.cumsum(sizes)[:-1]]

    def number(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:  # the global file order
        first = starts[(partition_info or {}).get("number", 0)]
        return part.assign(**{ORDER: np.arange(first, first + len(part), dtype=np.int64)})

    frame = frame.map_partitions(number, meta={**frame.dtypes.to_dict(), ORDER: "int64"})
    by_user = frame.shuffle("user_id", npartitions=npartitions or frame.npartitions)
    meta = SAMPLE_SCHEMA.empty_table().to_pandas()
    samples = by_user.map_partitions(
        _samples_partition,
        config.kcore.k,
        config.drop_duplicates,
        settings.like_threshold,
        config.history_len,
        settings.profile_items,
        meta=meta,
    ).compute()
    table = pa.Table.from_pandas(samples.reset_index(drop=True), schema=SAMPLE_SCHEMA, preserve_index=False)
    split_rank = pd.Series(table.column("split").to_pylist()).map({"train": 0, "valid": 1, "test": 2})
    keys = pa.table({"u": table.column("user_id"), "s": pa.array(split_rank.to_numpy(dtype=np.int64))})
    return table.take(pc.sort_indices(keys, sort_keys=[("u", "ascending"), ("s", "ascending")]))
