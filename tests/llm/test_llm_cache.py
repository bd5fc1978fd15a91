"""The response cache: hits skip the backend, streamed replies are committed as they come (whole chunks for
backends without a sink), a failure or a kill -9 loses no finished reply."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from reasoningrec.llm.base import Generation, GenerationSettings, LLMBackendError
from reasoningrec.llm.cache import CachedBackend, ResponseStore, accepts_on_reply, cache_key

REPO_ROOT = Path(__file__).resolve().parents[2]


class EchoBackend:
    """Replies "reply:<last message>", counting every prompt it is asked to generate."""

    name = "fake"
    model_id = "echo-1"

    def __init__(self, delay: float = 0.0, fail: set[str] | None = None):
        self.delay = delay
        self.fail = fail or set()
        self.calls: list[str] = []
        self.batches: list[int] = []

    def generate(self, batch, settings, progress=None):
        time.sleep(self.delay)
        self.batches.append(len(batch))
        out = []
        for conv in batch:
            content = conv[-1]["content"]
            self.calls.append(content)
            if content in self.fail:
                out.append(Generation("", finish_reason="error"))
            else:
                out.append(Generation(f"reply:{content}", prompt_tokens=len(content), completion_tokens=3))
        return out


class StreamingBackend(EchoBackend):
    """Hands each reply to ``on_reply`` as it is made; raises ``error`` at the prompts in ``fail``."""

    def __init__(self, fail: set[str] | None = None, error: type[BaseException] = LLMBackendError):
        super().__init__()
        self.fail_at = fail or set()
        self.error = error

    def generate(self, batch, settings, progress=None, on_reply=None):
        self.batches.append(len(batch))
        out = []
        for i, conv in enumerate(batch):
            content = conv[-1]["content"]
            self.calls.append(content)
            if content in self.fail_at:
                raise self.error(f"POST http://fake/v1/chat/completions failed with HTTP 500 at {content}")
            out.append(Generation(f"reply:{content}", prompt_tokens=len(content), completion_tokens=3))
            if on_reply is not None:
                on_reply([(i, out[-1])])
        return out


def convs(names):
    return [[{"role": "system", "content": "be brief"}, {"role": "user", "content": n}] for n in names]


def count_rows(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0
    finally:
        conn.close()


def test_key_depends_on_every_part_but_not_dict_order():
    msgs = [{"role": "user", "content": "hi"}]
    base = cache_key("hf", "m", msgs, GenerationSettings())
    assert base == cache_key("hf", "m", [{"content": "hi", "role": "user"}], GenerationSettings())
    others = {
        cache_key("openai", "m", msgs, GenerationSettings()),
        cache_key("hf", "m2", msgs, GenerationSettings()),
        cache_key("hf", "m", [{"role": "user", "content": "hi!"}], GenerationSettings()),
        cache_key("hf", "m", [{"role": "system", "content": "hi"}], GenerationSettings()),
        cache_key("hf", "m", msgs, GenerationSettings(seed=1)),
        cache_key("hf", "m", msgs, GenerationSettings(temperature=0.0)),
        cache_key("hf", "m", msgs, GenerationSettings(top_p=0.75)),
        cache_key("hf", "m", msgs, GenerationSettings(max_new_tokens=64)),
    }
    assert base not in others and len(others) == 8
    assert len(base) == 64


def test_second_run_makes_zero_backend_calls(tmp_path):
    db = tmp_path / "cache" / "llm.sqlite"
    names = [f"item {i}" for i in range(7)]
    first = EchoBackend()
    out1 = CachedBackend(first, db, chunk_size=3).generate(convs(names), GenerationSettings())
    assert [g.text for g in out1] == [f"reply:{n}" for n in names]
    assert not any(g.cached for g in out1)
    assert first.batches == [3, 3, 1]

    second = EchoBackend()
    cached = CachedBackend(second, db)  # a fresh instance, as in a new process
    out2 = cached.generate(convs(names), GenerationSettings())
    assert second.calls == []
    assert [g.text for g in out2] == [g.text for g in out1]
    assert [g.prompt_tokens for g in out2] == [len(n) for n in names]
    assert all(g.cached for g in out2)
    assert (cached.hits, cached.misses) == (7, 0)

    # Other settings are other requests.
    third = EchoBackend()
    CachedBackend(third, db).generate(convs(names[:2]), GenerationSettings(seed=5))
    assert third.calls == names[:2]


def test_mixed_hits_duplicates_and_order(tmp_path):
    db = tmp_path / "c.sqlite"
    CachedBackend(EchoBackend(), db).generate(convs(["b", "d"]), GenerationSettings())
    backend = EchoBackend()
    cached = CachedBackend(backend, db, chunk_size=10)
    out = cached.generate(convs(["a", "b", "c", "a", "d", "c"]), GenerationSettings())
    assert [g.text for g in out] == ["reply:a", "reply:b", "reply:c", "reply:a", "reply:d", "reply:c"]
    assert sorted(backend.calls) == ["a", "c"]  # duplicates generated once, hits not at all
    assert [g.cached for g in out] == [False, True, False, True, True, True]


def test_errors_are_returned_but_not_stored(tmp_path):
    db = tmp_path / "c.sqlite"
    out = CachedBackend(EchoBackend(fail={"x"}), db).generate(convs(["x", "y"]), GenerationSettings())
    assert [g.finish_reason for g in out] == ["error", "stop"]
    retry = EchoBackend()
    out = CachedBackend(retry, db).generate(convs(["x", "y"]), GenerationSettings())
    assert retry.calls == ["x"]
    assert [g.text for g in out] == ["reply:x", "reply:y"]


def test_malformed_messages_name_the_conversation(tmp_path):
    cached = CachedBackend(EchoBackend(), tmp_path / "c.sqlite")
    with pytest.raises(ValueError, match="conversation 1, message 0"):
        cached.generate([[{"role": "user", "content": "ok"}], [{"role": "bot", "content": "x"}]], GenerationSettings())
    with pytest.raises(ValueError, match="conversation 0: empty"):
        cached.generate([[]], GenerationSettings())


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from reasoningrec.llm.base import Generation, GenerationSettings
    from reasoningrec.llm.cache import CachedBackend

    class Slow:
        name = "fake"
        model_id = "echo-1"
        def generate(self, batch, settings, progress=None):
            time.sleep(0.25)
            return [Generation("reply:" + c[-1]["content"], 1, 3) for c in batch]

    batch = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": f"p{i:02d}"}] for i in range(20)]
    CachedBackend(Slow(), sys.argv[1], chunk_size=2).generate(batch, GenerationSettings())
    print("finished")
    """
)


def test_kill_9_mid_run_loses_nothing_finished(tmp_path):
    db = tmp_path / "c.sqlite"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(db)], env=env, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while count_rows(db) < 4:
            assert proc.poll() is None, "the generating process ended before it could be killed"
            assert time.monotonic() < deadline, "no chunk was committed within 60 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert b"finished" not in proc.stdout.read()
    kept = count_rows(db)
    assert 4 <= kept < 20 and kept % 2 == 0  # whole chunks only

    names = [f"p{i:02d}" for i in range(20)]
    resumed = EchoBackend()
    out = CachedBackend(resumed, db, chunk_size=2).generate(convs(names), GenerationSettings())
    assert len(resumed.calls) == 20 - kept
    assert set(resumed.calls).isdisjoint(n for n, g in zip(names, out, strict=True) if g.cached)
    assert [g.text for g in out] == [f"reply:{n}" for n in names]
    assert sum(g.cached for g in out) == kept
    assert count_rows(db) == 20


def test_concurrent_readers_see_whole_chunks_while_a_writer_commits(tmp_path):
    db = tmp_path / "c.sqlite"
    names = [f"q{i:02d}" for i in range(30)]
    settings = GenerationSettings()
    keys = [cache_key("fake", "echo-1", c, settings) for c in convs(names)]
    ResponseStore(db).close()  # create the schema first so readers never race the CREATE
    seen: list[list[int]] = [[] for _ in range(3)]
    errors: list[BaseException] = []
    writer_done = threading.Event()

    def reader(slot: int) -> None:
        store = ResponseStore(db)
        try:
            while True:
                stop = writer_done.is_set()
                found = store.get_many(keys)
                for key, g in found.items():
                    assert g.text == f"reply:{names[keys.index(key)]}" and g.cached
                seen[slot].append(len(found))
                if stop:
                    return
                time.sleep(0.005)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        CachedBackend(EchoBackend(delay=0.02), db, chunk_size=3).generate(convs(names), settings)
    finally:
        writer_done.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    for counts in seen:
        assert counts == sorted(counts)  # never goes backwards
        assert all(c % 3 == 0 for c in counts)  # a chunk is visible whole or not at all
        assert counts[-1] == 30


def test_streamed_replies_are_kept_when_the_backend_fails_mid_chunk(tmp_path):
    db = tmp_path / "c.sqlite"
    names = [f"p{i}" for i in range(10)]
    CachedBackend(EchoBackend(), db).generate(convs(names[:2]), GenerationSettings())  # 2 hits
    failing = StreamingBackend(fail={"p6"})
    with pytest.raises(LLMBackendError) as err:
        CachedBackend(failing, db, chunk_size=4).generate(convs(names), GenerationSettings(), progress="describe")
    assert failing.batches == [4, 4]  # p2-p5, then p6 fails before p7 in the second chunk
    message = str(err.value)
    assert message.startswith("POST http://fake/v1/chat/completions failed with HTTP 500 at p6; describe: ")
    assert f"4 of the 8 replies this call had to generate are kept in {db} (2 of 10 were cached before)" in message
    assert "a rerun sends only the 4 requests without a reply" in message
    assert isinstance(err.value.__cause__, LLMBackendError)
    assert count_rows(db) == 6

    resumed = StreamingBackend()
    out = CachedBackend(resumed, db, chunk_size=4).generate(convs(names), GenerationSettings())
    assert resumed.calls == ["p6", "p7", "p8", "p9"]
    assert [g.text for g in out] == [f"reply:{n}" for n in names]


def test_other_failures_keep_their_type_and_the_streamed_replies(tmp_path, caplog):
    db = tmp_path / "c.sqlite"
    with pytest.raises(MemoryError, match="at c"):
        CachedBackend(StreamingBackend(fail={"c"}, error=MemoryError), db).generate(
            convs(["a", "b", "c", "d"]), GenerationSettings(), progress="profile"
        )
    assert count_rows(db) == 2
    assert "profile: fake failed (MemoryError); 2 of the 4 replies this call had to generate are kept" in caplog.text


@pytest.mark.parametrize("inner", [StreamingBackend, EchoBackend])  # with and without the backend's sink
def test_on_reply_gets_every_position_once_hits_first_duplicates_included(tmp_path, inner):
    db = tmp_path / "c.sqlite"
    CachedBackend(EchoBackend(), db).generate(convs(["b"]), GenerationSettings())
    seen: list[list[tuple[int, str, bool]]] = []
    out = CachedBackend(inner(), db, chunk_size=10).generate(
        convs(["a", "b", "c", "a"]),
        GenerationSettings(),
        on_reply=lambda pairs: seen.append([(i, g.text, g.cached) for i, g in pairs]),
    )
    assert seen[0] == [(1, "reply:b", True)]  # the hit, before anything is generated
    flat = sorted(pair for group in seen for pair in group)
    assert flat == [(0, "reply:a", False), (1, "reply:b", True), (2, "reply:c", False), (3, "reply:a", True)]
    assert [(g.text, g.cached) for g in out] == [(text, hit) for _, text, hit in flat]
    # Streamed: "a" (with its duplicate), then "c", each as it came; otherwise the chunk at its end.
    assert len(seen) == (3 if inner is StreamingBackend else 2)


def test_accepts_on_reply():
    assert accepts_on_reply(StreamingBackend()) and not accepts_on_reply(EchoBackend())

    class Forwarding:
        def generate(self, batch, settings, **kwargs):
            return []

    assert accepts_on_reply(Forwarding())


def test_writers_on_many_threads_share_one_store(tmp_path):
    store = ResponseStore(tmp_path / "c.sqlite")
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(25):
                key = f"{worker}-{n}"
                store.put_many([(key, "fake", "echo-1", "{}", Generation(f"reply:{key}"))])
                assert store.get_many([key])[key].text == f"reply:{key}"
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(store) == 200
    store.close()


class ShowingBackend(StreamingBackend):
    """Shows its own progress per call, as the HF and OpenAI backends do."""

    def generate(self, batch, settings, progress=None, on_reply=None):
        from reasoningrec.progress import progress as progress_bar

        with progress_bar(len(batch), progress, "prompts") as bar:
            out = super().generate(batch, settings, progress, on_reply)
            bar.update(len(batch))
        return out


def test_a_labelled_call_shows_one_progress_over_its_chunks(tmp_path, monkeypatch, caplog):
    """The cache owns the display of a call: 10 chunks write a start and an end line, not 10 of each;
    a call served from the cache shows no progress; a failed call says where it stopped."""
    import logging

    monkeypatch.setenv("REASONINGREC_PROGRESS", "never")
    caplog.set_level(logging.INFO, logger="reasoningrec")
    db = tmp_path / "c.sqlite"
    names = [f"p{i}" for i in range(40)]
    CachedBackend(ShowingBackend(), db, chunk_size=4).generate(convs(names), GenerationSettings(), progress="judge")

    def shown():
        return [r.getMessage() for r in caplog.records if r.name == "reasoningrec.progress"]

    assert shown()[0] == "judge: 40 replies" and shown()[1].startswith("judge: 40 replies in ") and len(shown()) == 2
    caplog.clear()
    CachedBackend(ShowingBackend(), db, chunk_size=4).generate(convs(names), GenerationSettings(), progress="judge")
    assert shown() == [] and "judge: 40 of 40 replies cached, 0 to generate" in caplog.text
    caplog.clear()
    with pytest.raises(LLMBackendError):
        CachedBackend(ShowingBackend(fail={"q5"}), db, chunk_size=4).generate(
            convs([f"q{i}" for i in range(8)]), GenerationSettings(), progress="judge"
        )
    assert shown()[-1].startswith("judge: stopped at 5/8 replies in ")
