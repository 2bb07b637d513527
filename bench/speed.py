"""Speed: acllm's local model against llama.cpp called directly, and the CLI's start-up time.

    python -m bench.speed [--quick]

(a) Generation tokens/s through acllm ``LocalChat`` and through ``llama_cpp.Llama.create_completion``
on the same GGUF file, the same token ids, the same settings (greedy, max_tokens, threads, repeat
penalty), one model instance each side. Runs alternate A,B then B,A round by round (drift and a
noisy neighbour hit both sides alike); each call gets a fresh prompt so neither side reuses its KV
cache more than the other. Reported: medians and the ratio acllm/direct, non-streaming and streaming.
(b) Wall time of ``acllm --help`` and ``python -c "import acllm"`` (median of 20 runs each).
Results: bench/results/speed-{quick,full}.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, bootstrap_ci, fmt_ci, machine, print_table, write_results

MAX_TOKENS = 128
THREADS, THREADS_BATCH, N_CTX = 1, 2, 2048
TOPICS = [
    f"{who} {where}"
    for where in ("in a lighthouse", "on a night train", "at a village market", "under the sea")
    for who in ("a retired sailor", "a young baker", "a lost robot", "two old friends", "a fox")
]


def _messages(i: int) -> list[Any]:
    from acllm.types import Message

    return [
        Message("system", "You are a storyteller. Write vivid, detailed prose."),
        Message("user", f"Write a long story about {TOPICS[i % len(TOPICS)]} (round {i})."),
    ]


class Sides:
    """The two ways to generate: A = acllm LocalChat, B = llama_cpp.Llama directly."""

    def __init__(self) -> None:
        from llama_cpp import Llama

        from acllm.models.local import LocalChat, LocalOptions
        from acllm.types import ChatOptions

        self.chat = LocalChat(
            LocalOptions(threads=THREADS, threads_batch=THREADS_BATCH, n_ctx=N_CTX)
        )
        self.llm = Llama(
            model_path=str(self.chat.path),
            n_ctx=N_CTX,
            n_threads=THREADS,
            n_threads_batch=THREADS_BATCH,
            seed=0,
            verbose=False,
        )
        self.opts = ChatOptions(max_tokens=MAX_TOKENS)
        self.penalty = LocalOptions().repeat_penalty

    def _direct_kwargs(self, messages: list[Any]) -> dict[str, Any]:
        # The very token ids acllm feeds llama.cpp: its rendered chat template, tokenised the same way.
        prompt = self.chat.render(messages).encode()
        tokens = self.llm.tokenize(prompt, add_bos=False, special=True)
        return {
            "prompt": tokens,
            "max_tokens": MAX_TOKENS,
            "temperature": self.opts.temperature,
            "top_p": self.opts.top_p,
            "repeat_penalty": self.penalty,
        }

    async def acllm(self, messages: list[Any], stream: bool) -> dict[str, Any]:
        start = time.perf_counter()
        first = None
        if stream:
            text, tokens = [], 0
            async for delta in self.chat.stream(messages, self.opts):
                if first is None and delta.text:
                    first = time.perf_counter() - start
                text.append(delta.text)
                if delta.usage:
                    tokens = delta.usage.completion_tokens
            out = "".join(text)
        else:
            reply = await self.chat.chat(messages, self.opts)
            out, tokens = reply.text, reply.usage.completion_tokens
        return _result(out, tokens, time.perf_counter() - start, first)

    def direct(self, messages: list[Any], stream: bool) -> dict[str, Any]:
        start = time.perf_counter()
        kwargs = self._direct_kwargs(messages)
        first = None
        if stream:
            text, tokens = [], 0
            for chunk in self.llm.create_completion(**kwargs, stream=True):
                choice = chunk["choices"][0]
                if first is None and choice["text"]:
                    first = time.perf_counter() - start
                if not choice.get("finish_reason"):
                    tokens += 1
                text.append(choice["text"])
            out = "".join(text)
        else:
            res = self.llm.create_completion(**kwargs)
            out, tokens = res["choices"][0]["text"], int(res["usage"]["completion_tokens"])
        return _result(out, tokens, time.perf_counter() - start, first)


def _result(text: str, tokens: int, seconds: float, first: float | None) -> dict[str, Any]:
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tok_s": tokens / seconds,
        "first_s": first,
        "text": text,
    }


async def generation(rounds: int) -> dict[str, Any]:
    sides = Sides()
    await sides.acllm(_messages(-1), False)  # warm up both sides (thread pool, caches)
    sides.direct(_messages(-1), False)
    out: dict[str, Any] = {}
    for k, stream in enumerate((False, True)):
        runs: dict[str, list[dict[str, Any]]] = {"acllm": [], "direct": []}
        same = 0
        for r in range(rounds):
            messages = _messages(2 * rounds * k + r)
            order = ("acllm", "direct") if r % 2 == 0 else ("direct", "acllm")
            got = {}
            for side in order:
                if side == "acllm":
                    got[side] = await sides.acllm(messages, stream)
                else:
                    got[side] = sides.direct(messages, stream)
                runs[side].append(got[side])
            same += got["acllm"]["text"] == got["direct"]["text"]
        out["stream" if stream else "non_stream"] = _summary(runs, same, rounds)
        print(f"  {'stream' if stream else 'non-stream'}: {rounds} rounds", file=sys.stderr)
    return out


def _summary(runs: dict[str, list[dict[str, Any]]], same: int, rounds: int) -> dict[str, Any]:
    med = {side: statistics.median(r["tok_s"] for r in rs) for side, rs in runs.items()}
    pair = [a["tok_s"] / b["tok_s"] for a, b in zip(runs["acllm"], runs["direct"], strict=True)]
    firsts = {s: [r["first_s"] for r in rs if r["first_s"] is not None] for s, rs in runs.items()}
    return {
        "median_tok_s": med,
        "ratio_of_medians": med["acllm"] / med["direct"],
        "median_paired_ratio": statistics.median(pair),
        "median_paired_ratio_ci": bootstrap_ci(
            len(pair), lambda idx: statistics.median(pair[i] for i in idx)
        ),
        "paired_ratios": pair,
        "median_first_token_s": {s: statistics.median(v) if v else None for s, v in firsts.items()},
        "median_tokens": {s: statistics.median(r["tokens"] for r in rs) for s, rs in runs.items()},
        "identical_text": f"{same}/{rounds}",
        "runs": {
            s: [{k: v for k, v in r.items() if k != "text"} for r in rs] for s, rs in runs.items()
        },
    }


def startup(runs: int) -> dict[str, Any]:
    """Wall time of fresh processes, interleaved; ``python -c pass`` is the floor."""
    bindir = Path(sys.executable).parent
    commands = {
        "acllm --help": [str(bindir / "acllm"), "--help"],
        "python -c 'import acllm'": [sys.executable, "-c", "import acllm"],
        "python -c 'pass'": [sys.executable, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(t), "min_s": min(t), "runs": t}
        for name, t in times.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="6 generation rounds instead of 16")
    args = parser.parse_args(argv)
    rounds = 6 if args.quick else 16
    info = machine()
    cli = startup(20)
    gen = asyncio.run(generation(rounds))
    payload = {
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "max_tokens": MAX_TOKENS,
        "threads": THREADS,
        "threads_batch": THREADS_BATCH,
        "machine": info,
        "generation": gen,
        "startup": cli,
    }
    rows = [
        [
            mode,
            f"{g['median_tok_s']['acllm']:.1f}",
            f"{g['median_tok_s']['direct']:.1f}",
            f"{g['ratio_of_medians']:.3f}",
            f"{g['median_paired_ratio']:.3f}",
            fmt_ci(g["median_paired_ratio_ci"]),
            g["identical_text"],
        ]
        for mode, g in gen.items()
    ]
    print_table(
        ["generation", "acllm tok/s", "direct tok/s", "ratio", "paired ratio", "95% CI", "same"],
        rows,
    )
    print()
    print_table(
        ["start-up", "median s", "min s"],
        [[k, f"{v['median_s']:.3f}", f"{v['min_s']:.3f}"] for k, v in cli.items()],
    )
    print(f"\nwritten {write_results('speed-' + payload['mode'], payload)}")


if __name__ == "__main__":
    main()
