"""Explanation quality beyond BERTScore: grounding, personalisation, PETER's feature metrics, length
and repetition, and an optional LLM judge (definitions in docs/explanations.md)."""
