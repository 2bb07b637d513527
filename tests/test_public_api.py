"""The public surface: a light ``import acllm``, the FakeChatModel and HashEmbedder test doubles,
and model weights checked by sha256."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import acllm
from acllm.embed.base import Embedder
from acllm.embed.hash import HashEmbedder
from acllm.errors import ContextOverflowError, ServiceError, UserError
from acllm.models.base import ChatModel
from acllm.models.fake import FakeChatModel
from acllm.types import ChatOptions, Message
from acllm.weights import PackagedFile, locate, sha256_file, verify

HEAVY = ("numpy", "pydantic", "llama_cpp", "torch", "httpx")


def _loaded_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


# --- import cost ---------------------------------------------------------------------------------


def test_import_acllm_is_light() -> None:
    assert _loaded_after("import acllm") == []


def test_building_the_cli_parser_is_light() -> None:
    code = (
        "import acllm.cli.main as m\nm.build_parser().parse_args(['translate', '--to', 'es', 'x'])"
    )
    assert _loaded_after(code) == []


def test_the_probe_can_see_heavy_imports() -> None:
    assert "numpy" in _loaded_after("import acllm.embed.hash")


def test_version() -> None:
    assert isinstance(acllm.__version__, str)
    assert acllm.__version__.count(".") >= 2


# --- FakeChatModel -------------------------------------------------------------------------------


def user(text: str) -> list[Message]:
    return [Message("user", text)]


async def test_fake_replies_in_order_then_default() -> None:
    model = FakeChatModel(["one", "two"], default="later")
    texts = [(await model.chat(user(f"q{i}"))).text for i in range(4)]
    assert texts == ["one", "two", "later", "later"]


async def test_fake_without_default_fails_when_replies_run_out() -> None:
    model = FakeChatModel(["only"])
    assert (await model.chat(user("a"))).text == "only"
    with pytest.raises(ServiceError):
        await model.chat(user("b"))


async def test_fake_reply_can_be_a_function_of_the_messages() -> None:
    def shout(messages: Sequence[Message]) -> str:
        return messages[-1].content.upper()

    model = FakeChatModel([shout], default=shout)
    assert (await model.chat(user("hello"))).text == "HELLO"
    assert (await model.chat(user("again"))).text == "AGAIN"


async def test_fake_records_calls() -> None:
    model = FakeChatModel(default="ok", name="scripted")
    opts = ChatOptions(max_tokens=7, temperature=0.5)
    messages = [Message("system", "be brief"), Message("user", "hi")]
    reply = await model.chat(messages, opts)
    await model.chat(user("second"))
    assert reply.model == "scripted"
    assert len(model.calls) == 2
    sent, used = model.calls[0]
    assert sent == messages
    assert used is opts
    assert model.calls[1][0] == user("second")
    assert model.calls[1][1].max_tokens == ChatOptions().max_tokens


async def test_fake_usage() -> None:
    model = FakeChatModel(default="three word reply")
    reply = await model.chat(user("a b c"))
    assert reply.usage.prompt_tokens == model.count_tokens(user("a b c"))
    assert reply.usage.completion_tokens == 3
    assert reply.finish_reason == "stop"


async def test_fake_streams_the_reply() -> None:
    model = FakeChatModel(["Hello there, world"])
    deltas = [d async for d in model.stream(user("hi"))]
    assert "".join(d.text for d in deltas) == "Hello there, world"
    assert len([d for d in deltas if d.text]) == 3
    last = deltas[-1]
    assert last.finish_reason == "stop"
    assert last.usage is not None
    assert last.usage.completion_tokens == 3
    assert all(d.finish_reason is None for d in deltas[:-1])
    assert len(model.calls) == 1


async def test_fake_context_overflow_reports_the_excess() -> None:
    model = FakeChatModel(default="ok", context_window=20)
    messages = user("one two three four five")  # 5 words + 3 framing = 8 tokens
    assert model.count_tokens(messages) == 8
    with pytest.raises(ContextOverflowError) as info:
        await model.chat(messages, ChatOptions(max_tokens=15))
    err = info.value
    assert err.over == 8 + 15 - 20
    assert err.needed == 23
    assert err.window == 20
    assert isinstance(err, UserError)
    assert model.calls == []  # refused before it counted as a call


async def test_fake_context_exactly_full_is_allowed() -> None:
    model = FakeChatModel(default="ok", context_window=20)
    reply = await model.chat(user("one two three four five"), ChatOptions(max_tokens=12))
    assert reply.text == "ok"


async def test_fake_stream_overflow_raises() -> None:
    model = FakeChatModel(default="ok", context_window=10)
    with pytest.raises(ContextOverflowError) as info:
        _ = [d async for d in model.stream(user("a b c"), ChatOptions(max_tokens=10))]
    assert info.value.over == 6


async def test_fake_rejects_empty_messages() -> None:
    with pytest.raises(UserError):
        await FakeChatModel(default="ok").chat([])


def test_fake_satisfies_the_chat_model_protocol() -> None:
    assert isinstance(FakeChatModel(), ChatModel)


# --- HashEmbedder --------------------------------------------------------------------------------


def test_hash_embedder_shape_and_unit_norm() -> None:
    emb = HashEmbedder()
    vecs = emb.embed(["the cat sat on the mat", "¿Dónde está la biblioteca?", "x"])
    assert vecs.shape == (3, emb.dim)
    assert vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert isinstance(emb, Embedder)


def test_hash_embedder_is_deterministic() -> None:
    texts = ["Refunds take five days.", "Shipping is free over 50 euros."]
    a = HashEmbedder().embed(texts)
    b = HashEmbedder().embed(texts)
    assert np.array_equal(a, b)
    assert np.array_equal(HashEmbedder().embed(texts[:1])[0], a[0])  # batch-independent


def test_hash_embedder_is_deterministic_across_processes() -> None:
    """It must not depend on Python's per-process string hash seed."""
    text = "Refunds take five days."
    code = (
        "import json\nfrom acllm.embed.hash import HashEmbedder\n"
        f"print(json.dumps(HashEmbedder().embed([{text!r}])[0].tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    other = np.array(json.loads(out.stdout), dtype=np.float32)
    assert np.allclose(other, HashEmbedder().embed([text])[0])


def test_hash_embedder_similar_texts_score_higher() -> None:
    emb = HashEmbedder()
    query, near, far = emb.embed(
        [
            "How long does a refund take?",
            "A refund takes how long to arrive?",
            "The orchestra played Beethoven last night.",
        ]
    )
    assert float(query @ near) > float(query @ far)
    assert float(query @ near) > 0.3


def test_hash_embedder_dim() -> None:
    assert HashEmbedder(dim=32).embed(["hello"]).shape == (1, 32)


def test_hash_embedder_folds_case_and_accents() -> None:
    emb = HashEmbedder()
    a, b = emb.embed(["Canción Rápida", "cancion rapida"])
    assert float(a @ b) == pytest.approx(1.0, abs=1e-5)


# --- weights -------------------------------------------------------------------------------------


def test_verify_accepts_the_right_digest(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    assert sha256_file(f) == digest
    assert verify(f, digest) == f


def test_verify_rejects_a_mismatch(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"tampered weights")
    with pytest.raises(ServiceError) as info:
        verify(f, hashlib.sha256(b"original weights").hexdigest())
    assert str(f) in info.value.message
    assert info.value.exit_code == 3


def test_verify_checks_each_expected_digest(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"good")
    good = hashlib.sha256(b"good").hexdigest()
    verify(f, good)
    f.write_bytes(b"bad!")
    with pytest.raises(ServiceError):
        verify(f, hashlib.sha256(b"other").hexdigest())


def _item(package: str, relpath: str = "model.bin") -> PackagedFile:
    return PackagedFile(package, "acllm-bogus-weights", "9.9.9", relpath, "0" * 64, 1)


def test_locate_missing_package_is_a_user_error() -> None:
    with pytest.raises(UserError) as info:
        locate(_item("acllm_bogus_weights_pkg_zz"))
    err = info.value
    assert not isinstance(err, ServiceError)
    assert "acllm-bogus-weights" in err.message
    assert "acllm-bogus-weights==9.9.9" in err.hint


def test_locate_missing_file_in_installed_package_is_a_service_error() -> None:
    with pytest.raises(ServiceError) as info:
        locate(_item("acllm", "no_such_weights.bin"))
    assert "no_such_weights.bin" in info.value.message


def test_locate_without_check_returns_the_path() -> None:
    path = locate(_item("acllm", "__init__.py"), check=False)
    assert path == Path(acllm.__file__)


def test_locate_checks_the_digest() -> None:
    with pytest.raises(ServiceError):
        locate(_item("acllm", "__init__.py"))  # the recorded digest is all zeros


def test_all_lists_exactly_the_lazy_exports() -> None:
    import acllm

    assert sorted(acllm.__all__) == sorted(acllm._EXPORTS)
    for name in acllm.__all__:
        assert getattr(acllm, name) is not None
