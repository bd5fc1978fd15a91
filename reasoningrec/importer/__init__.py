"""Import texts written by someone else's LLM (the ReasoningRec authors' Mixtral outputs).

Layout of a texts folder (the paper's processed data, or any user's files shaped the same way):

- ``processed_item_information.json``: item id -> {title, brand, price, description}
- ``user_profile_summary.json``: user id -> profile text
- ``sft_{train,valid,test}.json.gz``: JSON list of {instruction, input, output}, one per user, in
  ascending user order but without user ids; ``output`` = ``Prediction: Yes|No`` + reasoning
- ``movie_summary_25_words.csv`` (ML-1M): movie_id, ..., summary

Reasoning records are matched to the rows of ``samples.parquet`` by the target title, the history
titles with their liked/disliked polarity and the profile text, and the match is made consistent with
the ascending user order by a weighted increasing-subsequence alignment (:func:`match_records`).

Modules: :mod:`~.files` (the folder's file names and readers), :mod:`~.sft` (parsing one record),
:mod:`~.match` (records to sample rows), :mod:`~.frames` (descriptions, profiles and reasoning
frames), :mod:`~.stage` (``run_import``).
"""
