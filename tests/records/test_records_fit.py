"""A record within its token budget: the oldest history items go first, the answer is never cut."""

from __future__ import annotations

from records_data import HISTORY, PROFILE, TARGET

from reasoningrec.records.fit import fit_record
from reasoningrec.records.prompt import ItemText


def test_shortening_drops_the_oldest_history_item_first(tiny_tokenizer):
    tok = tiny_tokenizer
    full = fit_record(tok, "full", "beauty", PROFILE, HISTORY, TARGET, "Prediction: Yes\nok", 10_000)
    assert full.dropped == 0 and full.history_kept == 3
    limit = full.n_tokens - 5  # one item must go
    fitted = fit_record(tok, "full", "beauty", PROFILE, HISTORY, TARGET, "Prediction: Yes\nok", limit)
    assert fitted.dropped >= 1 and fitted.n_tokens <= limit
    assert "Fresh Eau De Parfum" not in fitted.prompt_text  # the oldest went first
    assert "Monoi Oil" in fitted.prompt_text  # the newest stays
    assert fitted.completion.startswith("Prediction: Yes\nok")  # the answer is never cut
    tiny = fit_record(tok, "full", "beauty", PROFILE, HISTORY, TARGET, "Prediction: Yes\nok", 64)
    assert tiny.history_kept == 0 and tiny.n_tokens > 64  # reported, not silently cut


def test_real_paper_items_fit_with_real_lengths(tiny_tokenizer):
    """Real Amazon titles and the authors' LLM descriptions: the prompt fits and keeps the newest items."""
    import json

    from conftest import data_file

    info = json.loads(data_file("reasoningrec-paper/beauty/processed_item_information.json").read_text())
    texts = [
        ItemText(v["title"], f"Brand: {v.get('brand', '')}", v.get("description", "")) for v in list(info.values())[:12]
    ]
    history = [(i % 2, t) for i, t in enumerate(texts[:10])]
    fitted = fit_record(tiny_tokenizer, "full", "beauty", PROFILE, history, texts[10], "Prediction: No\nBecause.", 1024)
    assert fitted.n_tokens <= 1024 and fitted.history_kept < 10
    assert texts[9].title in fitted.prompt_text
