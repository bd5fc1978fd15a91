"""What the Prefect flows (``flows/``) call: stage specs, cache keys, retry rules, shards, task runners.

Nothing here imports Prefect at module level; the flows stay thin wrappers around these functions.
"""
