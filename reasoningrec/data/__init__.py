"""Data layer: source readers (ingest), k-core filtering, chronological samples, review sampling."""
