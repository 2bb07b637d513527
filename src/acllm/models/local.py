"""Local GGUF models through llama.cpp (llama-cpp-python). Default: SmolLM2-135M-Instruct.

The prompt is rendered with the model's own chat template (read from the GGUF), tokenised once, checked
against the window, then generated from; a JSON schema becomes a llama.cpp grammar so even a 135M model
returns valid JSON. llama.cpp is blocking and not thread-safe: calls run one at a time in a worker
thread, and a stream is cancelled between tokens when its consumer goes away.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import ServiceError, UserError
from acllm.models.base import check_budget
from acllm.registry import Backend
from acllm.types import ChatOptions, Delta, Message, Reply, Usage
from acllm.weights import SMOLLM2_135M, locate

_GGUF_MAGIC = b"GGUF"


class LocalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str | None = None  # None: the packaged SmolLM2-135M-Instruct
    n_ctx: int = Field(default=2048, ge=128)
    # Generation is memory-bound: with a neighbour busy, 2 threads fell to 17 tok/s while 1 held ~140.
    threads: int = Field(default=1, ge=1)
    # Prompt processing is compute-bound and gains from both cores.
    threads_batch: int = Field(default=2, ge=1)
    seed: int = 0
    # Tiny models loop on a phrase without a mild penalty on repeats.
    repeat_penalty: float = Field(default=1.1, ge=1.0)


def _check_gguf(path: Path) -> None:
    if not path.is_file():
        raise UserError(
            f"GGUF file not found: {path}",
            hint="check models.<name>.path, or leave it unset for the packaged model",
        )
    with path.open("rb") as fh:
        if fh.read(4) != _GGUF_MAGIC:
            raise UserError(
                f"{path} is not a GGUF model file (wrong magic bytes)",
                hint="download or convert the model to GGUF format",
            )


class LocalChat:
    def __init__(self, options: LocalOptions | None = None) -> None:
        opts = options or LocalOptions()
        path = Path(opts.path).expanduser() if opts.path else locate(SMOLLM2_135M)
        _check_gguf(path)
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ServiceError("llama-cpp-python is not importable", hint=str(exc)) from None
        try:
            self._llm: Any = Llama(
                model_path=str(path),
                n_ctx=opts.n_ctx,
                n_threads=opts.threads,
                n_threads_batch=opts.threads_batch,
                seed=opts.seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise UserError(
                f"llama.cpp could not load {path}: {exc}",
                hint="the file may be truncated or corrupt; download it again",
            ) from None
        meta = self._llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise UserError(
                f"{path} has no chat template in its metadata",
                hint="use an instruct/chat model in GGUF format",
            )
        vocab = self._llm
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=vocab.detokenize([vocab.token_eos()]).decode(errors="ignore"),
            bos_token=vocab.detokenize([vocab.token_bos()]).decode(errors="ignore"),
        )
        self.name = "smollm2-135m-instruct" if not opts.path else path.stem
        self.path = path
        self._window = int(opts.n_ctx)
        self._repeat_penalty = opts.repeat_penalty
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    @property
    def context_window(self) -> int:
        return self._window

    def close(self) -> None:
        """Free the model's memory now rather than at interpreter exit."""
        with self._lock:
            self._llm.close()

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the chat template makes of ``messages``."""
        turns: Any = [{"role": m.role, "content": m.content} for m in messages]
        result = self._formatter(messages=turns)
        return str(result.prompt)

    def _tokens(self, messages: Sequence[Message]) -> list[int]:
        return list(self._llm.tokenize(self.render(messages).encode(), add_bos=False, special=True))

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self._tokens(messages))

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            from llama_cpp.llama_grammar import LlamaGrammar

            try:
                self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
            except Exception as exc:  # llama.cpp raises bare errors for schemas it can't compile
                raise UserError(f"JSON schema cannot be turned into a grammar: {exc}") from None
        return self._grammars[key]

    def _completion(
        self, messages: Sequence[Message], opts: ChatOptions, stream: bool
    ) -> tuple[int, Any]:
        check_budget(self, messages, opts.max_tokens)
        tokens = self._tokens(messages)
        result = self._llm.create_completion(
            prompt=tokens,
            max_tokens=opts.max_tokens,
            temperature=opts.temperature,
            top_p=opts.top_p,
            stop=list(opts.stop) or None,
            stream=stream,
            grammar=self._grammar(opts.schema) if opts.schema else None,
            seed=opts.seed,
            repeat_penalty=self._repeat_penalty,
        )
        return len(tokens), result

    def _chat_blocking(self, messages: Sequence[Message], opts: ChatOptions) -> Reply:
        start = time.perf_counter()
        with self._lock:
            prompt_tokens, out = self._completion(messages, opts, stream=False)
        choice = out["choices"][0]
        usage = Usage(
            prompt_tokens, int(out["usage"]["completion_tokens"]), time.perf_counter() - start
        )
        return Reply(
            text=choice["text"],
            model=self.name,
            usage=usage,
            finish_reason=choice.get("finish_reason") or "stop",
        )

    async def chat(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply:
        return await asyncio.to_thread(self._chat_blocking, messages, opts or ChatOptions())

    def chat_sync(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply:
        return self._chat_blocking(messages, opts or ChatOptions())

    def _stream_blocking(
        self, messages: Sequence[Message], opts: ChatOptions, cancelled: threading.Event
    ) -> Iterator[Delta]:
        start = time.perf_counter()
        with self._lock:
            prompt_tokens, chunks = self._completion(messages, opts, stream=True)
            produced, finish = 0, "stop"
            for chunk in chunks:
                if cancelled.is_set():
                    finish = "cancelled"
                    chunks.close()
                    break
                choice = chunk["choices"][0]
                if choice.get("finish_reason"):  # the closing chunk carries no new token
                    finish = choice["finish_reason"]
                else:
                    produced += 1
                if choice["text"]:
                    yield Delta(choice["text"])
        yield Delta(
            "",
            finish_reason=finish,
            usage=Usage(prompt_tokens, produced, time.perf_counter() - start),
        )

    async def stream(
        self, messages: Sequence[Message], opts: ChatOptions | None = None
    ) -> AsyncIterator[Delta]:
        opts = opts or ChatOptions()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | BaseException | None] = asyncio.Queue()
        cancelled = threading.Event()

        def produce() -> None:
            try:
                for delta in self._stream_blocking(messages, opts, cancelled):
                    loop.call_soon_threadsafe(queue.put_nowait, delta)
            except BaseException as exc:  # handed to the consumer, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, produce)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()  # the consumer stopped early: stop generating between tokens
            await worker


def _build(opts: LocalOptions, runtime: object) -> LocalChat:
    return LocalChat(opts)


BACKEND = Backend(
    "chat",
    "local",
    LocalOptions,
    _build,
    "llama.cpp on a GGUF file (default: packaged SmolLM2-135M-Instruct)",
)

# llama.cpp prints its load log to stderr unless told otherwise.
os.environ.setdefault("LLAMA_LOG_LEVEL", "error")
