"""ReasoningRec: like/dislike predictions with human-readable explanations from LLM reasoning."""

__version__ = "0.1.0"
