"""The local llama.cpp backend on the real packaged SmolLM2-135M weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acllm import ChatOptions, ContextOverflowError, Message, UserError
from acllm.models.local import LocalChat, LocalOptions

pytestmark = pytest.mark.model
ASK = [Message("user", "Name three colours.")]


async def test_chat_counts_tokens_and_usage(local_model: LocalChat) -> None:
    reply = await local_model.chat(ASK, ChatOptions(max_tokens=24))
    assert reply.text.strip()
    assert reply.usage.prompt_tokens == local_model.count_tokens(ASK)
    assert 0 < reply.usage.completion_tokens <= 24
    assert reply.finish_reason in ("stop", "length")


async def test_prompt_uses_the_models_chat_template(local_model: LocalChat) -> None:
    prompt = local_model.render([Message("system", "Be brief."), *ASK])
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")


async def test_stream_matches_chat_at_temperature_zero(local_model: LocalChat) -> None:
    opts = ChatOptions(max_tokens=20)
    whole = await local_model.chat(ASK, opts)
    deltas = [d async for d in local_model.stream(ASK, opts)]
    assert "".join(d.text for d in deltas) == whole.text
    assert deltas[-1].finish_reason == whole.finish_reason
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens == whole.usage.completion_tokens


async def test_abandoned_stream_stops_and_frees_the_model(local_model: LocalChat) -> None:
    got = 0
    async for _ in local_model.stream(ASK, ChatOptions(max_tokens=200)):
        got += 1
        if got == 3:
            break
    reply = await local_model.chat(ASK, ChatOptions(max_tokens=5))  # would deadlock if held
    assert reply.usage.completion_tokens <= 5


@pytest.mark.parametrize(
    "question",
    ["Is Paris in France? Answer as JSON.", "¿Está Madrid en España? Responde en JSON."],
)
async def test_schema_constrains_output_to_valid_json(
    local_model: LocalChat, question: str
) -> None:
    schema = {
        "type": "object",
        "required": ["answer", "confidence"],
        "properties": {
            "answer": {"type": "boolean"},
            "confidence": {"enum": ["low", "medium", "high"]},
        },
    }
    reply = await local_model.chat(
        [Message("user", question)], ChatOptions(max_tokens=40, schema=schema)
    )
    data = json.loads(reply.text)
    assert isinstance(data["answer"], bool) and data["confidence"] in ("low", "medium", "high")


async def test_prompt_over_the_window_is_an_error_that_says_by_how_much(
    local_model: LocalChat,
) -> None:
    long = [Message("user", "word " * 3000)]
    needed = local_model.count_tokens(long) + 100
    with pytest.raises(ContextOverflowError) as info:
        await local_model.chat(long, ChatOptions(max_tokens=100))
    assert info.value.needed == needed
    assert info.value.over == needed - local_model.context_window


def test_any_gguf_path_works_and_bad_files_are_clear(
    local_model: LocalChat, tmp_path: Path
) -> None:
    same = LocalChat(LocalOptions(path=str(local_model.path), n_ctx=512, threads=1))
    assert same.context_window == 512 and same.chat_sync(ASK, ChatOptions(max_tokens=3)).text
    same.close()
    with pytest.raises(UserError, match="not found"):
        LocalChat(LocalOptions(path=str(tmp_path / "missing.gguf")))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="not a GGUF"):
        LocalChat(LocalOptions(path=str(junk)))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(local_model.path.read_bytes()[:4096])
    with pytest.raises(UserError, match="could not load"):
        LocalChat(LocalOptions(path=str(truncated)))
