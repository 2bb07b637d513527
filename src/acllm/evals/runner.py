"""``acllm eval run SUITE.toml``: a target (a task, an assistant, or a running service) over one
or more datasets, scored case by case, concurrently, stored as it goes, resumable.

A suite file::

    name = "bicis-support"
    concurrency = 2                       # cases in flight at once (the model's queue does the rest)
    metrics = ["contains", "token_f1", "refused", "latency"]

    [target]
    kind = "assistant"                    # or "task" (name = "sentiment", options = {...}),
    name = "bicis"                        # or "service" (url = "http://...", name = assistant/model)

    [[datasets]]
    path = "cases.jsonl"                  # relative to the suite file
    format = "jsonl"                      # jsonl | squad | tsv (input_column, expected_column)

A case whose target call fails is stored as failed with the error and the run goes on; ``--resume
RUN`` tries only the cases not done yet. Scores per case: ``exact_match`` and ``token_f1`` (best
over references; normaliser per suite: squad, mlqa-en, mlqa-es, spanish), ``contains`` (a
reference occurs in the output), ``correct`` (output label == expected), ``refused`` (the
refusal rate), ``refusal_correct`` (refused exactly when the case's metadata says
``"answerable": false``), ``rouge_l``; every case also records latency and tokens, and its
``cost`` when ``[service.prices]`` prices the target's model.
"""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from acllm.errors import AcllmError, ConfigError, UserError
from acllm.evals import metrics
from acllm.evals.datasets import Case, Dataset, load_jsonl, load_squad, load_tsv_pairs
from acllm.evals.store import Result, RunStore

METRICS = (
    "exact_match",
    "token_f1",
    "contains",
    "correct",
    "refused",
    "refusal_correct",
    "rouge_l",
    "latency",
)
NORMALIZERS: dict[str, metrics.Normalizer] = {
    "squad": metrics.normalize_squad,
    "mlqa-en": lambda t: metrics.normalize_mlqa(t, "en"),
    "mlqa-es": lambda t: metrics.normalize_mlqa(t, "es"),
    "spanish": metrics.normalize_spanish,
}
TASK_OUTPUT = {  # the field of each task's result that is compared with the references
    "translate": "translation",
    "sentiment": "label",
    "summarize": "summary",
    "paraphrase": "paraphrase",
    "correct": "corrected",
    "check_rules": "passed",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetSpec(_Strict):
    kind: Literal["task", "assistant", "service"]
    name: str
    url: str | None = None  # service: the server's base URL
    api_key_env: str | None = None  # service: the variable holding its API key
    options: dict[str, Any] = Field(default_factory=dict)  # task keyword arguments


class DatasetSpec(_Strict):
    path: str
    format: Literal["jsonl", "squad", "tsv"] = "jsonl"
    name: str | None = None
    input_column: str = "input"
    expected_column: str = "expected"
    limit: int | None = Field(default=None, ge=1)


class Suite(_Strict):
    name: str
    target: TargetSpec
    datasets: list[DatasetSpec] = Field(min_length=1)
    metrics: list[Literal[METRICS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["token_f1", "latency"]
    )
    normalizer: Literal["squad", "mlqa-en", "mlqa-es", "spanish"] = "squad"
    concurrency: int = Field(default=2, ge=1, le=64)
    timeout_s: float = Field(default=120.0, gt=0)


def load_suite(path: str | Path) -> tuple[Suite, Path]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"suite file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return Suite.model_validate(raw), path.parent
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {key}", first["msg"]) from None


def load_datasets(suite: Suite, base: Path) -> list[Dataset]:
    out = []
    for spec in suite.datasets:
        path = base / spec.path
        if spec.format == "jsonl":
            data = load_jsonl(path, spec.name)
        elif spec.format == "squad":
            data = load_squad(path, spec.name)
        else:
            data = load_tsv_pairs(
                path,
                input_column=spec.input_column,
                expected_column=spec.expected_column,
                name=spec.name,
            )
        if spec.limit is not None:
            data.cases = data.cases[: spec.limit]
        out.append(data)
    return out


# -> (text to score, raw output, prompt tokens, completion tokens)
Call = Callable[[Case], Awaitable[tuple[str, Any, int, int]]]


def _question(case: Case) -> str:
    return case.input["question"] if isinstance(case.input, dict) else str(case.input)


def make_target(suite: Suite, runtime: Any) -> Call:
    """The function that runs one case on the suite's target."""
    target = suite.target
    if target.kind == "task":
        if target.name not in TASK_OUTPUT:
            raise UserError(f"unknown task {target.name!r}", hint=f"one of {sorted(TASK_OUTPUT)}")
        from acllm.tasks import Tasks

        tasks = Tasks(runtime)
        method = getattr(tasks, target.name)

        async def run_task(case: Case) -> tuple[str, Any, int, int]:
            result = await method(str(case.input), **target.options)
            used = result.get("usage") or {}
            prompt, completion = (
                int(used.get("prompt_tokens", 0)),
                int(used.get("completion_tokens", 0)),
            )
            return str(result[TASK_OUTPUT[target.name]]), result, prompt, completion

        return run_task
    if target.kind == "assistant":
        assistant = runtime.assistant(target.name)

        async def run_assistant(case: Case) -> tuple[str, Any, int, int]:
            answer = await assistant.ask(_question(case))
            used = answer.usage
            return answer.answer, answer.as_dict(), used.prompt_tokens, used.completion_tokens

        return run_assistant
    return _service_target(suite)


def _service_target(suite: Suite) -> Call:
    import os

    import httpx

    target = suite.target
    if not target.url:
        raise UserError("a service target needs url", hint='url = "http://127.0.0.1:8000"')
    headers = {}
    if target.api_key_env:
        key = os.environ.get(target.api_key_env)
        if not key:
            raise UserError(f"{target.api_key_env} is not set", hint="export the API key there")
        headers["Authorization"] = f"Bearer {key}"
    url = target.url.rstrip("/") + "/v1/chat/completions"

    async def run_service(case: Case) -> tuple[str, Any, int, int]:
        body = {"model": target.name, "messages": [{"role": "user", "content": _question(case)}]}
        async with httpx.AsyncClient(timeout=suite.timeout_s, headers=headers) as client:
            resp = await client.post(url, json=body)
        if resp.status_code >= 400:
            raise UserError(f"the service answered {resp.status_code}: {resp.text[:300]}")
        data = resp.json()
        text = data["choices"][0]["message"]["content"]
        used = data.get("usage") or {}
        return text, data, int(used.get("prompt_tokens", 0)), int(used.get("completion_tokens", 0))

    return run_service


def score(suite: Suite, case: Case, text: str, output: Any) -> dict[str, float]:
    refs = list(case.references) or ([case.expected] if isinstance(case.expected, str) else [])
    norm = NORMALIZERS[suite.normalizer]
    out: dict[str, float] = {}
    for name in suite.metrics:
        if name == "exact_match" and refs:
            out[name] = metrics.best_of(lambda p, g: metrics.exact_match(p, g, norm), text, refs)
        elif name == "token_f1" and refs:
            out[name] = metrics.best_of(lambda p, g: metrics.token_f1(p, g, norm), text, refs)
        elif name == "contains" and refs:
            hay = f" {norm(text)} "
            out[name] = float(any(norm(r) and f" {norm(r)} " in hay for r in refs))
        elif name == "correct" and case.expected is not None:
            out[name] = float(str(text).strip().lower() == str(case.expected).strip().lower())
        elif name == "refused" and isinstance(output, dict) and "refused" in output:
            out[name] = float(bool(output["refused"]))
        elif name == "refusal_correct" and isinstance(case.metadata.get("answerable"), bool):
            refused = bool(isinstance(output, dict) and output.get("refused"))
            out[name] = float(refused != case.metadata["answerable"])
        elif name == "rouge_l" and refs:
            out[name] = max(metrics.rouge_l(text, r) for r in refs)
    return out


async def run_suite(
    suite: Suite,
    datasets: list[Dataset],
    call: Call,
    store: RunStore,
    run_id: str,
    *,
    progress: Callable[[int], object] | None = None,
    price: tuple[float, float] | None = None,
) -> dict[str, int]:
    """Every case not done yet in ``run_id``, ``suite.concurrency`` at a time; returns counts."""
    done = store.done(run_id)
    todo = [(d.name, c) for d in datasets for c in d.cases if (d.name, c.id) not in done]
    gate = asyncio.Semaphore(suite.concurrency)
    counts = {"ok": 0, "failed": 0, "skipped": len(done)}

    async def one(dataset: str, case: Case) -> None:
        async with gate:
            began = time.perf_counter()
            try:
                text, output, prompt, completion = await asyncio.wait_for(
                    call(case), suite.timeout_s
                )
            except (AcllmError, TimeoutError, OSError, KeyError, ValueError) as exc:
                reason = str(exc) or type(exc).__name__
                result = Result(dataset, case.id, "failed", None, {},
                                time.perf_counter() - began, None, reason, case.metadata)  # fmt: skip
            else:
                latency = time.perf_counter() - began
                scores = score(suite, case, text, output)
                if "latency" in suite.metrics:
                    scores["latency_s"] = latency
                if price is not None:  # per 1,000 tokens, prompt and completion
                    scores["cost"] = (prompt * price[0] + completion * price[1]) / 1000
                tokens = prompt + completion
                result = Result(dataset, case.id, "ok", {"text": text, "raw": output}, scores,
                                latency, tokens, None, case.metadata)  # fmt: skip
            await asyncio.to_thread(store.save, run_id, result)
            counts[result.status] += 1
            if progress is not None:
                progress(1)

    await asyncio.gather(*(one(name, case) for name, case in todo))
    store.finish(run_id)
    return counts


def summary(results: list[Result]) -> dict[str, Any]:
    """Per dataset: cases, failures, and the mean of every score (over the cases that have it)."""
    out: dict[str, Any] = {}
    for result in results:
        block = out.setdefault(result.dataset, {"cases": 0, "failed": 0, "scores": {}})
        block["cases"] += 1
        block["failed"] += result.status == "failed"
        for name, value in result.scores.items():
            block["scores"].setdefault(name, []).append(value)
    for block in out.values():
        block["scores"] = {
            name: {"mean": sum(v) / len(v), "n": len(v)} for name, v in block["scores"].items()
        }
    return out


def target_price(suite: Suite, settings: Any) -> tuple[float, float] | None:
    """(prompt, completion) price per 1,000 tokens of the target's model, from service.prices."""
    if settings is None:
        return None
    name = suite.target.name
    if suite.target.kind == "task":
        name = settings.tasks.model or settings.default_model
    elif suite.target.kind == "assistant" and name in settings.assistants:
        name = settings.assistants[name].model or settings.default_model
    price = settings.service.prices.get(name)
    return None if price is None else (price.prompt_per_1k, price.completion_per_1k)


def config_snapshot(suite: Suite, settings: Any) -> dict[str, Any]:
    """What produced a run: the suite and the parts of the config the target depends on."""
    snapshot: dict[str, Any] = {"suite": json.loads(suite.model_dump_json())}
    if settings is not None:
        snapshot["settings"] = json.loads(settings.model_dump_json())
    return snapshot
