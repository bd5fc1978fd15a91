"""Backends for the worker processes of :mod:`reasoningrec.llm.multi` tests (importable by name in a
spawned worker, which unpickles its factory from here)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from reasoningrec.llm.base import Generation


class ScriptedBackend:
    """Replies ``reply to <prompt>``, one reply per micro-batch of one; appends every prompt it is
    sent to ``log_path``; on the prompt ``die`` it kills its own process (SIGKILL) the first time,
    when ``die_marker`` does not exist yet (it creates it)."""

    name, model_id = "scripted", "scripted-1"
    batch_size = 1

    def __init__(self, device: str, log_path: str, die_marker: str | None = None):
        self.device, self.log_path, self.die_marker = device, Path(log_path), die_marker

    def generate(self, batch, settings, progress=None, on_reply=None):
        out = []
        for i, conversation in enumerate(batch):
            prompt = conversation[-1]["content"]
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(prompt + "\n")
            if prompt == "die" and self.die_marker and not Path(self.die_marker).exists():
                Path(self.die_marker).touch()
                os.kill(os.getpid(), signal.SIGKILL)
            generation = Generation(f"reply to {prompt} on {self.device}", len(prompt), 3)
            out.append(generation)
            if on_reply is not None:
                on_reply([(i, generation)])
        return out


def scripted(device: str, *, log_path: str, die_marker: str | None = None) -> ScriptedBackend:
    return ScriptedBackend(device, log_path, die_marker)


def broken(device: str) -> ScriptedBackend:
    raise OSError(f"no model weights for {device}")
