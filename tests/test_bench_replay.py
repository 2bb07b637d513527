"""bench.replay: stored replies come back only for the same model, messages and options."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bench import replay
from bench.common import latency, run_cases

from acllm.config import Settings
from acllm.models.fake import FakeChatModel
from acllm.types import ChatOptions, Message


def _model(tmp_path: Path, fake: FakeChatModel, identity: str = "m1") -> replay.ReplayModel:
    return replay.ReplayModel(fake, replay.ReplayStore(tmp_path / "r.sqlite"), identity)


def test_same_call_is_replayed_with_its_recorded_latency(tmp_path: Path) -> None:
    fake = FakeChatModel(default=lambda ms: "said: " + ms[-1].content, latency_s=0.05)
    model = _model(tmp_path, fake)
    msgs = [Message("user", "hola")]
    first = asyncio.run(model.chat(msgs))
    token = replay.start_case()
    again = asyncio.run(model.chat(msgs))
    then, count = replay.end_case(token)
    assert again.text == first.text == "said: hola"
    assert len(fake.calls) == 1 and (model.hits, model.misses) == (1, 1)
    assert count == 1 and then == pytest.approx(first.usage.latency_s) and then >= 0.05


def test_changed_messages_options_or_model_generate_again(tmp_path: Path) -> None:
    fake = FakeChatModel(default=lambda ms: ms[-1].content.upper())
    model = _model(tmp_path, fake)
    asyncio.run(model.chat([Message("user", "a")]))
    asyncio.run(model.chat([Message("user", "b")]))
    asyncio.run(model.chat([Message("user", "a")], ChatOptions(max_tokens=9)))
    other = replay.ReplayModel(fake, model.store, "m2")  # other weights, same store
    asyncio.run(other.chat([Message("user", "a")]))
    assert len(fake.calls) == 4 and model.hits == 0


def test_sampled_calls_are_never_stored_and_the_switch_turns_replay_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeChatModel(default="x")
    model = _model(tmp_path, fake)
    hot = ChatOptions(temperature=0.8)
    asyncio.run(model.chat([Message("user", "a")], hot))
    asyncio.run(model.chat([Message("user", "a")], hot))
    assert len(model.store) == 0 and len(fake.calls) == 2
    seeded = ChatOptions(temperature=0.8, seed=7)
    asyncio.run(model.chat([Message("user", "a")], seeded))
    asyncio.run(model.chat([Message("user", "a")], seeded))
    assert len(fake.calls) == 3
    monkeypatch.setenv(replay.ENV, "0")
    asyncio.run(model.chat([Message("user", "a")], seeded))
    assert len(fake.calls) == 4


def test_run_cases_counts_replayed_cases_and_keeps_their_latency(tmp_path: Path) -> None:
    fake = FakeChatModel(default="ok", latency_s=0.03)
    model = _model(tmp_path, fake)

    async def call(text: str) -> dict[str, str]:
        reply = await model.chat([Message("user", text)])
        return {"text": reply.text}

    asyncio.run(run_cases(["a", "b"], call, "first"))
    cases = asyncio.run(run_cases(["a", "b", "c"], call, "second"))
    assert [c["replayed"] for c in cases] == [True, True, False]
    assert all(c["latency_s"] >= 0.03 for c in cases)
    assert latency(cases)["replayed"] == 2


def test_runtime_wraps_its_chat_models_and_counts_them(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        models={"f": {"backend": "fake", "replies": ["uno"]}},
        default_model="f",
    )
    store = replay.ReplayStore(tmp_path / "r.sqlite")
    rt = replay.runtime(settings, store)  # empty, so falsy: it must still be the one used
    model = rt.chat("f")
    assert isinstance(model, replay.ReplayModel) and model is rt.chat("f")
    asyncio.run(model.chat([Message("user", "a")]))
    asyncio.run(model.chat([Message("user", "a")]))
    assert replay.summary(rt) == {"replayed": 1, "generated": 1}
    assert len(store) == 1  # filed in the store given, never in bench/results/replies.sqlite
    rt.close()
