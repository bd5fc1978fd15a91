"""Guarded generation: chunks with progress, post-processing, quality checks and one retry."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from reasoningrec.progress import progress
from reasoningrec.synthesis.guards import REPEAT_THRESHOLD, check_output, count_problems
from reasoningrec.synthesis.prompting import Prompt
from reasoningrec.synthesis.text import postprocess_output

EXAMPLES = 3


@dataclass(frozen=True)
class Outcome:
    """The kept reply of one prompt: the retry's when the first one failed a guard."""

    text: str
    problem: str | None
    retried: bool

    @property
    def valid(self) -> bool:
        return self.problem is None


@dataclass
class Stats:
    """Token and cache accounting of one stage."""

    prompts: int = 0
    generations: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fresh_completion_tokens: int = 0
    seconds: float = 0.0
    retried: int = 0
    fixed_by_retry: int = 0
    first_problems: dict = field(default_factory=dict)

    def add(self, generations) -> None:
        for gen in generations:
            self.generations += 1
            self.cache_hits += bool(gen.cached)
            self.prompt_tokens += gen.prompt_tokens
            self.completion_tokens += gen.completion_tokens
            if not gen.cached:
                self.fresh_completion_tokens += gen.completion_tokens

    def summary(self) -> dict:
        backend_calls = self.generations - self.cache_hits
        return {
            "prompts": self.prompts,
            "generations": self.generations,
            "backend_generations": backend_calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 2),
            # Throughput of what the backend actually generated (cache hits cost no tokens).
            "tokens_per_s": round(self.fresh_completion_tokens / self.seconds, 2) if self.seconds > 0 else None,
            "retried": self.retried,
            "fixed_by_retry": self.fixed_by_retry,
            "first_attempt_problems": count_problems(self.first_problems.values()),
        }


def _judge(prompt: Prompt, generation) -> tuple[str, str | None]:
    text = postprocess_output(generation.text)
    # A backend error ends the reply early: treated like a cut-off ("length") reply.
    finish = "length" if generation.finish_reason == "error" else generation.finish_reason
    full = "\n".join(content for _, content in prompt.messages)
    return text, check_output(text, finish, prompt.instruction, prompt=full, repeat_threshold=REPEAT_THRESHOLD)


def generate_guarded(
    backend,
    prompts: Sequence[Prompt],
    settings,
    chunk_size: int = 32,
    desc: str = "generate",
    stats: Stats | None = None,
) -> tuple[list[Outcome], Stats]:
    """Generate one reply per prompt in chunks; failed replies are retried once with ``seed + 1``.

    The backend (normally a :class:`CachedBackend`) commits each chunk, so a crash loses at most
    the chunk in flight and a rerun is served from the cache.
    """
    stats = stats or Stats()
    retry_settings = replace(settings, seed=settings.seed + 1)
    outcomes: list[Outcome] = []
    start = time.perf_counter()
    with progress(len(prompts), desc, "prompts") as bar:
        for offset in range(0, len(prompts), chunk_size):
            chunk = list(prompts[offset : offset + chunk_size])
            generations = backend.generate([p.as_messages() for p in chunk], settings)
            _check_count(generations, chunk)
            stats.add(generations)
            judged = [_judge(p, g) for p, g in zip(chunk, generations, strict=True)]
            failed = [i for i, (_, problem) in enumerate(judged) if problem]
            for i in failed:
                stats.first_problems[offset + i] = judged[i][1]
            retried: dict[int, tuple[str, str | None]] = {}
            if failed:
                again = backend.generate([chunk[i].as_messages() for i in failed], retry_settings)
                _check_count(again, failed)
                stats.add(again)
                stats.retried += len(failed)
                for i, gen in zip(failed, again, strict=True):
                    retried[i] = _judge(chunk[i], gen)
                    stats.fixed_by_retry += retried[i][1] is None
            for i, (text, problem) in enumerate(judged):
                if i in retried and (retried[i][1] is None or problem is not None):
                    text, problem = retried[i]
                outcomes.append(Outcome(text=text, problem=problem, retried=i in retried))
            bar.update(len(chunk))
    stats.prompts += len(prompts)
    stats.seconds += time.perf_counter() - start
    return outcomes, stats


def _check_count(generations, expected) -> None:
    if len(generations) != len(expected):
        raise RuntimeError(f"backend returned {len(generations)} generations for {len(expected)} prompts")


def failure_examples(keys: Sequence[str], outcomes: Sequence[Outcome], limit: int = EXAMPLES) -> list[dict]:
    """A few failed outputs for the JSON summary."""
    return [
        {"key": key, "problem": o.problem, "text": o.text[:200]}
        for key, o in zip(keys, outcomes, strict=True)
        if o.problem
    ][:limit]
