"""Clients of the shared model process: RemoteChat and RemoteEmbedder, used by the HTTP workers.

The workers never load llama.cpp weights or e5: they send generation and embedding to the one
model process (``acllm.service.modelproc``), which queues callers fairly by the key in ``CALLER``.

Token counting stays in the worker. ``count_tokens`` is synchronous and called often (the
assistant fills its context budget one source at a time), so a round trip per call would block the
worker's event loop; llama.cpp loaded with ``vocab_only`` costs ~80 ms and a few MB once per worker
and counts exactly as the model process does (same tokenizer, same chat template), so budget
checks here and there agree.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from acllm.config import BackendSpec
from acllm.embed.base import EmbedKind, Vectors, batched
from acllm.errors import AcllmError, ServiceError, UnavailableError, UserError
from acllm.models.base import check_budget
from acllm.types import ChatOptions, Delta, Message, Reply, Usage

LOCAL_CHAT = frozenset({"local"})  # chat backends that run in the model process
LOCAL_EMBEDDERS = frozenset({"e5", "e5-torch", "minilm"})  # loaded once, in the model process
EMBED_BATCH = 32  # texts per request: a long ingest yields the embedder to queries between batches

# Who the current request is for: the model process queues fairly by this key.
CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("acllm_caller", default="anonymous")


def is_local(kind: str, backend: str) -> bool:
    return backend in (LOCAL_CHAT if kind == "chat" else LOCAL_EMBEDDERS)


def encode_vectors(vectors: Vectors) -> str:
    return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode()


def decode_vectors(data: str, rows: int, dim: int) -> Vectors:
    flat = np.frombuffer(base64.b64decode(data), dtype="<f4").astype(np.float32)
    if flat.size != rows * dim:
        raise ServiceError(f"the model process sent {flat.size} floats for {rows}x{dim} vectors")
    return flat.reshape(rows, dim)


def error_from(status: int, text: str, headers: httpx.Headers) -> AcllmError:
    """The acllm error behind a model-process error answer, keeping its status and Retry-After."""
    try:
        err = json.loads(text).get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    message = str(err.get("message") or f"the model process answered HTTP {status}")
    hint = str(err.get("hint") or "")
    retry = headers.get("retry-after")
    if status in (429, 503):
        return UnavailableError(message, hint=hint, retry_after=float(retry) if retry else 1.0)
    if 400 <= status < 500:
        user = UserError(message, hint=hint)
        user.status = status  # e.g. 413 for a prompt over the window, 404 for an unknown model
        return user
    return ServiceError(message, hint=hint, status=status if status >= 500 else 502)


def _unreachable(url: str, exc: Exception) -> UnavailableError:
    return UnavailableError(
        f"the model process at {url} is unreachable: {exc}",
        hint="it may be starting or restarting; retry shortly",
        retry_after=2,
    )


class ModelProcessClient:
    """Where the model process listens and the bearer token it expects."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,  # e.g. ASGI, to test in-process
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.timeout = httpx.Timeout(timeout, connect=5.0)
        self.transport = transport
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[httpx.AsyncClient]:
        """This event loop's pooled client: connections to the model process are kept alive.

        A pooled async client belongs to the loop that first used it, so there is one per loop
        (a service worker has one); ``aclose`` ends them. ``verify=False``: plain http on
        loopback, and httpx would otherwise build a TLS context (~35 ms of CPU) per client.
        """
        loop = asyncio.get_running_loop()
        client = self._pools.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                base_url=self.url,
                headers=self.headers,
                timeout=self.timeout,
                transport=self.transport,
                verify=False,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
            self._pools[loop] = client
        yield client

    async def aclose(self) -> None:
        """Close the pooled clients (the service calls this as a worker stops)."""
        pools, self._pools = self._pools, weakref.WeakKeyDictionary()
        for client in list(pools.values()):
            await client.aclose()

    def sync_client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers=self.headers, timeout=self.timeout, verify=False
        )

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether the model process answers and has loaded its models, with what it said."""
        try:
            async with self.session() as client:
                resp = await client.get("/readyz", timeout=5.0)
        except httpx.HTTPError as exc:
            return False, {"error": f"model process unreachable: {exc}"}
        try:
            body: dict[str, Any] = resp.json()
        except ValueError:
            body = {"error": resp.text[:200]}
        return resp.status_code == 200, body

    @contextmanager
    def mapped(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise UnavailableError(
                f"the model process did not answer in time ({type(exc).__name__})",
                retry_after=5,
            ) from exc
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc


class VocabTokenizer:
    """A GGUF model's tokenizer and chat template without its weights (llama.cpp vocab_only)."""

    def __init__(self, path: Path) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaModel
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._model: Any = LlamaModel(path_model=str(path), params=params, verbose=False)
        template = self._model.metadata().get("tokenizer.chat_template")
        if not template:
            raise UserError(f"{path} has no chat template in its metadata")
        eos = self._model.detokenize([self._model.token_eos()]).decode(errors="ignore")
        bos = self._model.detokenize([self._model.token_bos()]).decode(errors="ignore")
        # Exactly as acllm.models.local renders prompts, so both sides count the same tokens.
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._lock = threading.Lock()

    def count(self, messages: Sequence[Message]) -> int:
        turns: Any = [{"role": m.role, "content": m.content} for m in messages]
        prompt = str(self._formatter(messages=turns).prompt)
        with self._lock:
            return len(self._model.tokenize(prompt.encode(), add_bos=False, special=True))

    def close(self) -> None:
        with self._lock:
            self._model.close()


class RemoteChat:
    """A ``local`` chat model served by the model process (the ChatModel protocol)."""

    def __init__(self, name: str, spec: BackendSpec, client: ModelProcessClient) -> None:
        from acllm.models.local import LocalOptions, _check_gguf
        from acllm.weights import SMOLLM2_135M, locate

        opts = LocalOptions.model_validate(spec.options())
        self.entry = name  # the config entry the model process knows it by
        self._path = Path(opts.path).expanduser() if opts.path else locate(SMOLLM2_135M)
        _check_gguf(self._path)
        self.name = "smollm2-135m-instruct" if not opts.path else self._path.stem
        self._window = int(opts.n_ctx)
        self._client = client
        self._tokenizer: VocabTokenizer | None = None
        self._lock = threading.Lock()

    @property
    def context_window(self) -> int:
        return self._window

    def count_tokens(self, messages: Sequence[Message]) -> int:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = VocabTokenizer(self._path)
        return self._tokenizer.count(messages)

    def close(self) -> None:
        with self._lock:
            if self._tokenizer is not None:
                self._tokenizer.close()
                self._tokenizer = None

    async def chat(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply:
        pieces: list[str] = []
        last = Delta("")
        async for delta in self.stream(messages, opts):
            pieces.append(delta.text)
            last = delta
        return Reply(
            text="".join(pieces),
            model=self.name,
            usage=last.usage or Usage(),
            finish_reason=last.finish_reason or "stop",
        )

    async def stream(
        self, messages: Sequence[Message], opts: ChatOptions | None = None
    ) -> AsyncIterator[Delta]:
        """Deltas from the model process; leaving early closes the request, which cancels it."""
        opts = opts or ChatOptions()
        check_budget(self, messages, opts.max_tokens)  # refuse before taking a place in the queue
        body = {
            "model": self.entry,
            "key": CALLER.get(),
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "options": {k: v for k, v in asdict(opts).items() if k != "timeout"},
        }
        with self._client.mapped():
            async with (
                self._client.session() as client,
                client.stream("POST", "/chat", json=body) as resp,
            ):
                if resp.status_code >= 400:
                    text = (await resp.aread()).decode(errors="replace")
                    raise error_from(resp.status_code, text, resp.headers)
                finished = False
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        item = json.loads(line)
                    except ValueError:
                        raise ServiceError("the model process sent a malformed line") from None
                    if "error" in item:
                        raise error_from(int(item["error"].get("code", 502)), line, httpx.Headers())
                    usage = item.get("usage")
                    finished = bool(item.get("finish_reason"))
                    yield Delta(
                        item.get("text", ""),
                        finish_reason=item.get("finish_reason"),
                        usage=Usage(**usage) if usage else None,
                    )
                if not finished:
                    raise UnavailableError("the model process ended a reply early", retry_after=1)


def _local_embedder_class(backend: str) -> Any:
    if backend == "e5":
        from acllm.embed.e5 import E5Embedder

        return E5Embedder
    if backend == "e5-torch":
        from acllm.embed.e5_torch import E5TorchEmbedder

        return E5TorchEmbedder
    from acllm.embed.minilm import MiniLMEmbedder

    return MiniLMEmbedder


class RemoteEmbedder:
    """A local embedder (e5, minilm) served by the model process (the Embedder protocol).

    ``name``, ``dim`` and ``model_id`` are the served model's own, so the embedding cache and the
    indexes see the same embedder as the CLI does.
    """

    def __init__(self, name: str, spec: BackendSpec, client: ModelProcessClient) -> None:
        cls = _local_embedder_class(spec.backend)
        self.entry = name
        self.name: str = cls.name
        self.dim: int = cls.dim
        self.model_id: str = cls.model_id
        self._client = client
        self._http = client.sync_client()  # thread-safe; used from request threads and jobs

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._batch(list(b), kind) for b in batched(texts, EMBED_BATCH)]
        return np.concatenate(parts)

    def _batch(self, texts: list[str], kind: EmbedKind) -> Vectors:
        body = {"embedder": self.entry, "key": CALLER.get(), "texts": texts, "kind": kind}
        with self._client.mapped():
            resp = self._http.post("/embed", json=body)
        if resp.status_code >= 400:
            raise error_from(resp.status_code, resp.text, resp.headers)
        data = resp.json()
        return decode_vectors(data["vectors"], len(texts), self.dim)

    def close(self) -> None:
        self._http.close()
