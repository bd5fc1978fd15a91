"""An SFT record shaped like the authors' (Beauty wording), the sample rows it is matched to, titles."""

from __future__ import annotations

import pandas as pd

INPUT = (
    "User Profile - \n\nLikes mild   soap.\n        User purchased the following items in the given order. "
    "List of recent items and their description -\n        Liked Soap &amp; Co Brand: A Price:  Description: \n\nok\n"
    "Disliked Gel Brand:  Price:  Description: \n\nsticky\n\nThe user will purchase the next target item - "
    "Cream Brand: C Price:  Description: \n\nrich\nDo not use any information not mentioned above. ...\n"
    "    Explain with reasoning whether the user will like or dislike the next target item - "
    '"Cream" in atmost 100 words.'
)


def record(profile: bool = True, target: str = "Cream", label: str = "Yes", history=("Soap &amp; Co", "Gel")):
    text = INPUT.replace("Cream", target).replace("Soap &amp; Co", history[0]).replace("Gel", history[1])
    if not profile:
        text = text[text.index("User purchased") :]
    return {"instruction": "You are an expert.", "input": text, "output": f"Prediction: {label} \n 1. Because.\n2. So."}


def samples_frame(rows):
    return pd.DataFrame(
        rows, columns=["user_id", "split", "target_item", "label", "history_items", "history_labels", "profile_items"]
    )


TITLES = {"1": "Soap &amp; Co", "2": "Gel", "3": "Cream", "4": "Lotion", "5": "Balm"}


# The exact figures of the authors' files: records per split, "No" records per split, profiles.
FIGURES = {"beauty": ((607, 603, 604), (47, 43, 44), 160), "fashion": ((896, 896, 896), (225, 232, 227), 848)}
