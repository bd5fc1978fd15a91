"""What prompts show of the stage files: each item's title, details and description; usable texts only."""

from __future__ import annotations

import pandas as pd

from reasoningrec.records.prompt import ItemText
from reasoningrec.synthesis.guards import TRUNCATED

MAX_TITLE_CHARS = 200


def usable_texts(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """Rows of a descriptions/profiles frame worth showing a model: valid ones, and ones only cut off
    at the token limit (their start still says something); texts that loop, echo the prompt, refuse
    or are empty are left out (the item then shows its title and details, the user no profile)."""
    if frame is None or "valid" not in frame.columns:
        return frame
    keep = frame["valid"].fillna(False).astype(bool)
    if "problem" in frame.columns:
        keep |= frame["problem"].astype("object").eq(TRUNCATED)
    return frame[keep]


def item_texts(items: pd.DataFrame, descriptions: pd.DataFrame | None) -> dict[str, ItemText]:
    """Item id -> what a prompt says about it: the title and details of ``items`` (clipped), and the
    item's description when ``descriptions`` has a usable one."""
    described = {}
    descriptions = usable_texts(descriptions)
    if descriptions is not None:
        described = dict(zip(descriptions["item_id"].astype(str), descriptions["description"].fillna(""), strict=True))
    texts = {}
    for row in items.itertuples(index=False):
        details = []
        for field, fmt in (
            ("brand", "Brand: {}"),
            ("price", "Price: {}"),
            ("genres", "Genres: {}"),
            ("year", "Year: {}"),
        ):
            value = getattr(row, field, None)
            if value is not None and not pd.isna(value) and str(value).strip():
                text = str(value).strip().replace("|", ", ") if field == "genres" else str(value).strip()
                details.append(fmt.format(_clip(text)))
        item_id = str(row.item_id)
        description = described.get(item_id, "")
        texts[item_id] = ItemText(_clip(str(row.title)), "; ".join(details), str(description).strip())
    return texts


def _clip(title: str) -> str:
    # Some scraped titles and brands are whole pages of CSS (seen in the paper's Amazon Beauty items); a title
    # that long would crowd out the history, so it is cut at a word boundary.
    title = " ".join(title.split())
    if len(title) <= MAX_TITLE_CHARS:
        return title
    return title[:MAX_TITLE_CHARS].rsplit(" ", 1)[0] + " ..."
