"""The chat-backend interface shared by every LLM backend and by the synthesis stages.

A backend turns a batch of chat conversations into one :class:`Generation` per conversation, in
input order, and hands each reply to an optional ``on_reply`` sink as soon as it is ready, so that a
failure later in the batch loses none of the replies already made. Backends are interchangeable:
local Hugging Face models, OpenAI-compatible HTTP servers (vLLM, TGI, Ollama, OpenAI) and the
embedded SmolLM2 default all implement :class:`ChatBackend`, and
:class:`reasoningrec.llm.cache.CachedBackend` wraps any of them with a persistent response cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from reasoningrec.errors import ReasoningRecError

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}

ROLES = ("system", "user", "assistant")


class LLMBackendError(ReasoningRecError):
    """A backend could not produce replies (server errors after retries, malformed responses)."""


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings of one generation call (part of the cache key)."""

    temperature: float = 0.01
    top_p: float = 0.9
    max_new_tokens: int = 256
    seed: int = 0


@dataclass(frozen=True)
class Generation:
    """One generated reply and its token accounting."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    cached: bool = False


ReplySink = Callable[[Sequence[tuple[int, Generation]]], None]
"""Receives ``(index into the batch, reply)`` pairs as replies become ready: one call per group of
replies that finished together, every reply exactly once, always on the thread that called
``generate``. An exception it raises ends the ``generate`` call."""


@runtime_checkable
class ChatBackend(Protocol):
    """Anything that turns chat conversations into replies, one per conversation, in input order.

    ``generate`` hands every reply to ``on_reply`` (when given) before it returns, and before it
    raises: replies finished before a failure reach the sink even though ``generate`` then raises.
    ``progress`` is a label: the call shows its progress under it (:mod:`reasoningrec.progress`);
    None = silent.
    """

    name: str  # "hf" | "openai" | "embedded"
    model_id: str

    def generate(
        self,
        batch: list[list[Message]],
        settings: GenerationSettings,
        progress: str | None = None,
        on_reply: ReplySink | None = None,
    ) -> list[Generation]: ...


def check_messages(conversation: list[Message], index: int = 0) -> None:
    """Raise ``ValueError`` naming the conversation and message when one is malformed."""
    if not conversation:
        raise ValueError(f"conversation {index}: empty (expected at least one message)")
    for position, message in enumerate(conversation):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"conversation {index}, message {position}: expected role in {ROLES}, got {message!r:.80}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"conversation {index}, message {position}: content must be a string")


def check_batch(batch: list[list[Message]]) -> None:
    """Check every conversation of a batch (``check_messages``), naming the first malformed one."""
    for index, conversation in enumerate(batch):
        check_messages(conversation, index)
