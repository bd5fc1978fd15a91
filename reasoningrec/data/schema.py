"""Column contracts of ``interactions.parquet`` and ``items.parquet`` (see docs/architecture.md)."""

from __future__ import annotations

import pandas as pd

INTERACTION_COLUMNS = ["user_id", "item_id", "rating", "timestamp", "review"]
ITEM_COLUMNS = ["item_id", "title", "brand", "price", "genres", "year", "description"]


def interactions_frame(user_id, item_id, rating, timestamp, review=None) -> pd.DataFrame:
    """Build an interactions table with the contract's dtypes (ids as str, rating float64, time int64)."""
    frame = pd.DataFrame(
        {
            "user_id": pd.Series(user_id, dtype=object).astype(str).to_numpy(dtype=object),
            "item_id": pd.Series(item_id, dtype=object).astype(str).to_numpy(dtype=object),
            "rating": pd.Series(rating).astype("float64").to_numpy(),
            "timestamp": pd.Series(timestamp).astype("int64").to_numpy(),
        }
    )
    frame["review"] = pd.Series(review, dtype=object).to_numpy() if review is not None else None
    frame["review"] = frame["review"].astype(object)
    return frame[INTERACTION_COLUMNS]


def items_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Complete an items table to the contract: every column present, ids unique, nullable types."""
    out = records.copy()
    for column in ITEM_COLUMNS:
        if column not in out:
            out[column] = None
    out["item_id"] = out["item_id"].astype(str).str.strip()  # the id whitespace rule (data/contract.py)
    out = out.drop_duplicates("item_id", keep="first")
    for column in ("title", "brand", "price", "genres", "description"):
        out[column] = out[column].astype(object).where(out[column].notna(), None)
        out[column] = out[column].map(lambda v: v if v is None else str(v))
    out["year"] = pd.to_numeric(out["year"], errors="coerce").astype("Int64")
    return out[ITEM_COLUMNS].reset_index(drop=True)


def _arrow_schemas():
    import pyarrow as pa

    interactions = pa.schema(
        [
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("rating", pa.float64()),
            ("timestamp", pa.int64()),
            ("review", pa.string()),
        ]
    )
    items = pa.schema(
        [
            ("item_id", pa.string()),
            ("title", pa.string()),
            ("brand", pa.string()),
            ("price", pa.string()),
            ("genres", pa.string()),
            ("year", pa.int64()),
            ("description", pa.string()),
        ]
    )
    return {"interactions": interactions, "items": items}


def write_contract_table(path, frame: pd.DataFrame, kind: str):
    """Write ``frame`` atomically with the contract's exact Arrow types (string ids, never null-typed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reasoningrec.io import atomic_path

    schema = _arrow_schemas()[kind]
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path
