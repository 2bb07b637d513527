"""Every benchmark in one command, then docs/BENCHMARKS.md regenerated from the results.

    python -m bench.suite --quick            # samples: minutes; tables in bench/results/BENCHMARKS-quick.md
    python -m bench.suite --full             # the figures of docs/BENCHMARKS.md (28 minutes warm, 98 cold)
    python -m bench.suite --full --resume    # after an interruption: skip the steps already done
    python -m bench.suite --quick --only guards,cache --no-docs

Each step is one bench module run as a subprocess (so one crash or leaked thread cannot take the
others down), cheap ones first, then the ones on ../shared/benchmarks, the load test last (it wants
the CPU to itself). A failing step is logged and the suite goes on; the summary lists it and the
exit status is 1. Progress is recorded in bench/results/suite-<mode>.json and each step's output in
bench/results/logs/. ``--resume`` skips a step when that record says it succeeded in the
interrupted run and every results file it writes exists and is newer than that run's start.
HaluEval runs only with ``--judge NAME`` (it needs a judge model; see bench/halueval.py).
Model replies are replayed from earlier runs where nothing that decides them changed
(bench/replay.py); ``--fresh`` generates them all again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.common import RESULTS, ROOT

MODES = ("quick", "full")
LOGS = RESULTS / "logs"


@dataclass(frozen=True)
class Step:
    """One bench module: how to run it in each mode and which results files it writes."""

    name: str
    flags: Mapping[str, tuple[str, ...]]
    outputs: Mapping[str, tuple[str, ...]]
    needs_judge: bool = False
    module: str = field(default="")

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", f"bench.{self.name}")

    def argv(self, mode: str, judge: str | None = None, config: str | None = None) -> list[str]:
        extra = [*(["--judge", judge] if judge else []), *(["--config", config] if config else [])]
        return [sys.executable, "-m", self.module, *self.flags[mode], *extra]

    def command(self, mode: str) -> str:
        """The command a person types to run this step alone."""
        judge = " --judge NAME" if self.needs_judge else ""
        return " ".join(["python -m", self.module, *self.flags[mode]]) + judge

    def files(self, mode: str, judge: str | None = None) -> list[Path]:
        return [RESULTS / name.format(judge=judge or "local") for name in self.outputs[mode]]


def _both(flag_quick: tuple[str, ...], flag_full: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {"quick": flag_quick, "full": flag_full}


def _per_mode(pattern: str) -> dict[str, tuple[str, ...]]:
    return {mode: (pattern.format(mode=mode, judge="{judge}"),) for mode in MODES}


QF = _both(("--quick",), ("--full",))

# Cheap first; then the sets under ../shared/benchmarks; the load test last.
STEPS: tuple[Step, ...] = (
    Step("guards", QF, _per_mode("guards-{mode}.json")),
    Step("memory", QF, _per_mode("memory-{mode}.json")),
    Step("own_sets", _both((), ()), _both(("own-sets.json",), ("own-sets.json",))),
    Step("speed", _both(("--quick",), ()), _per_mode("speed-{mode}.json")),
    Step("cache", QF, _per_mode("cache-{mode}.json")),
    Step("faithfulness", QF, _per_mode("faithfulness-{mode}.json")),
    Step("tasks", QF, _per_mode("tasks-{mode}.json")),
    Step("knowledge", QF, _per_mode("knowledge-{mode}.json")),
    Step("truthfulqa", QF, _per_mode("truthfulqa-{mode}.json")),
    Step("text2sql", QF, _per_mode("text2sql-{mode}.json")),
    Step("halueval", QF, _per_mode("halueval-{mode}-{judge}.json"), needs_judge=True),
    Step("load", QF, _per_mode("load-{mode}.json")),
)


def available_steps() -> list[Step]:
    """The registered steps whose module exists in this checkout (halueval may not)."""
    return [s for s in STEPS if (ROOT / Path(*s.module.split("."))).with_suffix(".py").exists()]


def step_by_name(name: str) -> Step:
    return next(s for s in STEPS if s.name == name)


# --- progress ------------------------------------------------------------------------------------


def progress_path(mode: str) -> Path:
    return RESULTS / f"suite-{mode}.json"


def load_progress(mode: str) -> dict[str, Any] | None:
    path = progress_path(mode)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data.get("started"), int | float) else None


def save_progress(progress: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = progress_path(progress["mode"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(progress, indent=1) + "\n")
    tmp.replace(path)


def already_done(step: Step, progress: dict[str, Any], judge: str | None) -> bool:
    """Done in the interrupted run: recorded as a success there, and its files newer than its start.

    The record is needed as well as the files: some modules write their file even when they fail
    (bench.load writes what it measured before the error), and guards/own_sets/speed/cache write
    the same file name in both modes.
    """
    record = progress.get("steps", {}).get(step.name, {})
    if record.get("status") != "ok":
        return False
    files = step.files(progress["mode"], judge)
    return all(p.exists() and p.stat().st_mtime >= progress["started"] for p in files)


# --- running -------------------------------------------------------------------------------------


def run_step(step: Step, mode: str, log: Path, judge: str | None, config: str | None) -> int:
    """Run one step, its output both on stdout and in ``log``; returns the exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = step.argv(mode, judge, config)
    with log.open("w", encoding="utf-8") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        with subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        ) as proc:
            assert proc.stdout is not None
            return _follow(proc, out)


def _follow(proc: subprocess.Popen[str], out: TextIO) -> int:
    """Copy the child's output to stdout and the log until it exits; stop it if we are stopped."""
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            out.write(line)
            out.flush()  # the log is followed live (tail -f) as the step runs
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def _say(text: str) -> None:
    print(f"[suite {time.strftime('%H:%M:%S')}] {text}", flush=True)


def run_suite(
    mode: str,
    steps: Sequence[Step],
    *,
    resume: bool = False,
    judge: str | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    """Run ``steps`` in order, recording progress after each; returns the progress record."""
    previous = load_progress(mode) if resume else None
    if previous is not None:
        progress = previous
        _say(f"resuming the {mode} run started {progress['started_at']}")
    else:
        now = time.time()
        progress = {
            "mode": mode,
            "started": now,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "steps": {},
        }
    progress["resumed_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z") if previous else None
    progress["judge"] = judge
    save_progress(progress)
    for step in steps:
        record: dict[str, Any] = {"command": step.command(mode)}
        if step.needs_judge and not judge:
            record |= {"status": "skipped", "why": "needs a judge model: --judge NAME"}
            _say(f"{step.name}: skipped ({record['why']})")
        elif previous is not None and already_done(step, previous, judge):
            _say(f"{step.name}: done in the interrupted run, skipped")
            continue
        else:
            log = LOGS / f"suite-{mode}-{step.name}.log"
            _say(f"{step.name}: {' '.join(step.argv(mode, judge, config)[1:])}")
            began = time.time()
            code = run_step(step, mode, log, judge, config)
            seconds = time.time() - began
            record |= {
                "status": "ok" if code == 0 else "failed",
                "exit_code": code,
                "seconds": round(seconds, 1),
                "finished": time.time(),
                "log": str(log.relative_to(ROOT) if log.is_relative_to(ROOT) else log),
            }
            _say(f"{step.name}: exit {code} after {seconds:.0f} s")
        progress["steps"][step.name] = record
        save_progress(progress)
    progress["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    save_progress(progress)
    return progress


def summary(progress: dict[str, Any]) -> tuple[str, bool]:
    """A plain table of the steps and whether every step that ran succeeded."""
    lines = [f"{'step':14} {'status':8} {'exit':>4} {'seconds':>8}  note"]
    ok = True
    for name, r in progress["steps"].items():
        ok = ok and r["status"] != "failed"
        seconds = f"{r['seconds']:.0f}" if "seconds" in r else "-"
        note = r.get("why") or (f"see {r['log']}" if r["status"] == "failed" else "")
        code = r.get("exit_code", "-")
        lines.append(f"{name:14} {r['status']:8} {code!s:>4} {seconds:>8}  {note}")
    return "\n".join(lines), ok


def parse_only(raw: str | None, steps: Sequence[Step]) -> list[Step]:
    if not raw:
        return list(steps)
    wanted = [x.strip() for x in raw.split(",") if x.strip()]
    known = {s.name for s in steps}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SystemExit(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [s for s in steps if s.name in wanted]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suite", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick")
    mode.add_argument("--full", action="store_const", dest="mode", const="full")
    parser.add_argument("--only", help="comma-separated steps: " + ",".join(s.name for s in STEPS))
    parser.add_argument("--resume", action="store_true", help="skip steps done in the last run")
    parser.add_argument("--no-docs", action="store_true", help="do not regenerate the tables")
    parser.add_argument("--judge", help="a configured model name: also run bench.halueval")
    parser.add_argument("--config", help="acllm.toml defining the judge model")
    parser.add_argument(
        "--fresh", action="store_true", help="generate every model reply again (no replay)"
    )
    args = parser.parse_args(argv)
    if args.fresh:  # read by bench.replay in every step's process
        os.environ["ACLLM_BENCH_REPLAY"] = "0"
    steps = parse_only(args.only, available_steps())
    began = time.time()
    try:
        progress = run_suite(
            args.mode, steps, resume=args.resume, judge=args.judge, config=args.config
        )
    except KeyboardInterrupt:
        _say(f"interrupted: python -m bench.suite --{args.mode} --resume carries on")
        return 130
    table, ok = summary(progress)
    print(f"\n{table}\n\nsuite ({args.mode}): {time.time() - began:.0f} s", flush=True)
    if not args.no_docs:
        from bench.docs import main as write_docs

        write_docs([f"--{args.mode}"])
    if not ok:
        print("some steps failed: see the logs named above", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
