"""Service load: ``acllm serve`` under 250, 450 and 1,000 concurrent clients, and its overhead.

    python -m bench.load --quick   # 10 s a point, 4 overhead rounds: about 5 minutes
    python -m bench.load --full    # 20 s a point, 8 overhead rounds: about 9 minutes
    python -m bench.load --quick --only cheap,fake   # subset of cheap, fake, local, overhead

The load generator is ``wrk`` (Debian package) on loopback, 2 threads, bounded in time, with
``bench/lua/load.lua`` for POST bodies and to count every status code; each point records requests,
throughput, p50/p95/p99 latency (wrk's histogram, over every response whatever its status), wrk's
socket errors (connect, read, write) and its time-outs (answers slower than ``--timeout`` 30 s).
The server's own JSON access log is parsed too: the statuses it sent and its latency per status
(so a 200's latency is not averaged with a 503's), plus whether every process of the server is still
alive and ``/healthz`` answers after the point.

Targets, each a real ``acllm serve`` subprocess (2 workers, 127.0.0.1, port 0, a config written to a
temporary folder, access log to a file):

- ``cheap``: ``GET /healthz``;
- ``fake``: ``POST /v1/chat/completions`` on a ``backend = "fake"`` model that waits 50 ms;
- ``local``: ``POST /v1/chat/completions`` on the embedded model (``model: "local"``, max_tokens 8)
  through the model process and its bounded fair queue (``queue_depth`` 8, ``queue_wait_s`` 10:
  see ``LOCAL_SERVICE``); excess load must come back as 503 with Retry-After, never dropped;
- ``overhead``: a minimal OpenAI-compatible upstream (``bench/upstream.py``, 50 ms per answer)
  loaded directly and through ``acllm serve`` (``backend = "openai"``, ``base_url`` = upstream),
  at concurrency 1 and 50, runs interleaved round by round (order reversed every other round);
  reported: per arm the median over rounds of p50/p95/p99 and the median (min-max) of the paired
  differences.

wrk is a closed-loop generator with no think time: a client sends its next request the moment an
answer arrives, a 503 included (it does not honour Retry-After), so past saturation the refusals
come back as fast as the server can say them. wrk (not wrk2) also measures latency from when a
request is sent, so queueing before the send (coordinated omission) is not in its percentiles.

Everything runs on the same 2 shared cores: wrk, acllm's workers, the model process, the upstream and
whatever else the machine is doing. Each point records the load average and the CPU seconds used by
the server's processes, by wrk and by everything else (/proc). No timing is asserted anywhere.
Results: bench/results/load-{quick,full}.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine, print_table, write_results

HERE = Path(__file__).resolve().parent
LUA = HERE / "lua" / "load.lua"
CLI = Path(sys.executable).parent / "acllm"
CONCURRENCY = (250, 450, 1000)
WRK_TIMEOUT_S = 30
FAKE_LATENCY_S = 0.05
UPSTREAM_DELAY_S = 0.05
OVERHEAD_CONCURRENCY = (1, 50)
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]
FAKE_BODY = {"model": "fake", "messages": MESSAGES, "max_tokens": 16}
LOCAL_BODY = {"model": "local", "messages": MESSAGES, "max_tokens": 8}
UP_BODY = {"model": "up", "messages": MESSAGES, "max_tokens": 16}
DIRECT_BODY = {"model": "upstream-fake", "messages": MESSAGES, "max_tokens": 16}
# The embedded model answers a max_tokens-8 chat in about 0.2-0.5 s on these two cores (2-5 per
# second). queue_depth 8 keeps the wait of the last one in the queue near 2-4 s, which is what an
# interactive client will sit through; everyone past that gets 503 + Retry-After at once instead
# of a long silent wait. queue_wait_s 10 is the backstop: about 3x the expected wait at the back of
# the queue, so it only fires when the machine is much slower than that.
LOCAL_SERVICE = {"queue_depth": 8, "queue_wait_s": 10}
TICK = os.sysconf("SC_CLK_TCK")


# --- processes -----------------------------------------------------------------------------------


def raise_fd_limit(want: int = 65536) -> tuple[int, int]:
    """Soft (and, as root, hard) RLIMIT_NOFILE up to ``want``; children (wrk, servers) inherit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limits in ((want, max(hard, want)), (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    parents = _parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cpu_of(pids: set[int]) -> float:
    """utime + stime of ``pids`` in seconds (those that are gone count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def cpu_machine() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACLLM_")}
    env["ACLLM_HOME"] = str(home)
    return env


def _stop(proc: subprocess.Popen[Any], timeout: float = 60) -> str:
    """SIGTERM, then SIGKILL after ``timeout``; how it ended."""
    if proc.poll() is not None:
        return f"had exited ({proc.returncode})"
    proc.send_signal(signal.SIGTERM)
    try:
        return f"exit {proc.wait(timeout)}"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"killed after {timeout:g} s"


@dataclass
class Server:
    """A running ``acllm serve``: its URL, start-up line, log file and the processes under it."""

    name: str
    proc: subprocess.Popen[str]
    url: str
    info: dict[str, Any]
    log: Path
    children: set[int] = field(default_factory=set)
    stopped: dict[str, Any] = field(default_factory=dict)

    def tree(self) -> set[int]:
        return {self.proc.pid, *self.children, *descendants(self.proc.pid)}

    def alive_children(self) -> int:
        return sum(alive(p) for p in self.children)

    def log_size(self) -> int:
        return self.log.stat().st_size


def _config(work: Path, body: str, service: dict[str, Any]) -> Path:
    lines = [f'data_dir = "{work / "home"}"', body.strip(), "[service]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in service.items()]
    path = work / "acllm.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def acllm_serve(
    name: str,
    config_body: str,
    service: dict[str, Any],
    workers: int = 2,
) -> Iterator[Server]:
    """``acllm serve`` on 127.0.0.1:0 with this config; stopped (and checked for leftovers) after."""
    with tempfile.TemporaryDirectory(prefix=f"acllm-load-{name}-") as tmp:
        work = Path(tmp)
        config = _config(work, config_body, service)
        log = work / "serve.log"
        env = _env(work)
        command = [str(CLI), "serve", "--host", "127.0.0.1", "--port", "0"]
        command += ["--workers", str(workers), "--config", str(config), "--json"]
        began = time.perf_counter()
        with log.open("w") as err:
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, text=True, cwd=work, env=env
            )
        server: Server | None = None
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            if not first:
                raise RuntimeError(
                    f"acllm serve ({name}) did not start:\n{log.read_text()[-3000:]}"
                )
            info = json.loads(first)
            _wait_ready(info["url"], proc, log)
            server = Server(name, proc, info["url"], info, log)
            server.children = descendants(proc.pid)
            server.info["start_s"] = round(time.perf_counter() - began, 1)
            yield server
        finally:
            tree = descendants(proc.pid) | (server.children if server else set())
            how = _stop(proc)
            left = {p for p in tree if alive(p)}
            for _ in range(100):  # multiprocessing's helpers exit once their pipes close
                if not left:
                    break
                time.sleep(0.1)
                left = {p for p in left if alive(p)}
            for pid in left:  # leaked: record, then end them (they are ours)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            text = log.read_text(errors="replace")
            if server is not None:
                server.stopped = {
                    "how": how,
                    "left_behind": sorted(left),
                    "tracebacks": text.count("Traceback"),
                    "log_tail_on_problem": text[-2000:] if (left or "Traceback" in text) else "",
                }
            if proc.stdout is not None:
                proc.stdout.close()


def _wait_ready(url: str, proc: subprocess.Popen[str], log: Path) -> None:
    with httpx.Client(timeout=30) as client:
        for _ in range(1200):
            if proc.poll() is not None:
                raise RuntimeError(f"acllm serve exited:\n{log.read_text()[-3000:]}")
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise RuntimeError(f"acllm serve never became ready:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def upstream(delay: float) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream", "--port", "0", "--delay", str(delay)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        yield url, proc
    finally:
        _stop(proc, 10)
        if proc.stdout is not None:
            proc.stdout.close()


# --- wrk -----------------------------------------------------------------------------------------


def wrk(
    url: str, connections: int, duration: float, body: dict[str, Any] | None, workdir: Path
) -> dict[str, Any]:
    """One bounded wrk run; its JSON summary (see bench/lua/load.lua)."""
    env = dict(os.environ)
    env["WRK_METHOD"] = "POST" if body is not None else "GET"
    env["WRK_BODY_FILE"] = ""
    if body is not None:
        path = workdir / "body.json"
        path.write_text(json.dumps(body))
        env["WRK_BODY_FILE"] = str(path)
    threads = min(2, connections)
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s"]
    command += ["--timeout", f"{WRK_TIMEOUT_S}s", "-s", str(LUA), url]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=duration + 120, check=False
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    out: dict[str, Any] = json.loads(lines[-1][len("WRK_JSON ") :])
    if done.stderr.strip():
        out["stderr"] = done.stderr.strip()[-500:]
    return out


def _ms(us: float) -> float:
    return round(us / 1000, 2)


def summarise(raw: dict[str, Any], connections: int) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1e6
    statuses = {int(k): v for k, v in raw["statuses"].items()}
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    lat = raw["latency_us"]
    errors = raw["errors"]
    return {
        "concurrency": connections,
        "duration_s": round(seconds, 2),
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "ok": ok,
        "ok_rps": round(ok / seconds, 1),
        "statuses": {str(k): statuses[k] for k in sorted(statuses)},
        "socket_errors": {k: errors[k] for k in ("connect", "read", "write")},
        "timeouts": errors["timeout"],
        "retry_after": raw["retry_after"],
        "unanswered_at_stop": raw["sent"] - raw["requests"],
        "latency_ms": {k: _ms(lat[k]) for k in ("p50", "p90", "p95", "p99", "p999", "mean", "max")},
    }


def _server_log(server: Server, offset: int) -> dict[str, Any]:
    """What the server's access log says about the requests logged since ``offset``."""
    with server.log.open("rb") as fh:
        fh.seek(offset)
        chunk = fh.read().decode(errors="replace")
    statuses: Counter[int] = Counter()
    by_status: dict[int, list[float]] = {}
    other = 0
    for line in chunk.splitlines():
        if not line.startswith("{"):
            other += bool(line.strip())
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            other += 1
            continue
        if rec.get("event") != "request":
            other += rec.get("level") in ("warning", "error", "critical")
            continue
        statuses[rec["status"]] += 1
        by_status.setdefault(rec["status"], []).append(rec["latency_ms"])
    latency = {}
    for code, values in sorted(by_status.items()):
        values.sort()
        latency[str(code)] = {f"p{q}": _pct(values, q) for q in (50, 95, 99)}
    return {
        "statuses": {str(k): statuses[k] for k in sorted(statuses)},
        "latency_ms": latency,
        "other_log_lines": other,
    }


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return round(sorted_values[i], 2)


def _health(url: str) -> dict[str, Any]:
    began = time.perf_counter()
    try:
        with httpx.Client(timeout=30) as client:
            status = client.get(f"{url}/healthz").status_code
    except httpx.HTTPError as exc:
        return {"status": None, "error": f"{type(exc).__name__}: {exc}"}
    return {"status": status, "ms": round(1000 * (time.perf_counter() - began), 1)}


def point(
    server: Server,
    path: str,
    connections: int,
    duration: float,
    body: dict[str, Any] | None,
    workdir: Path,
    grace: float = 2.0,
) -> dict[str, Any]:
    """One load point against ``server``: wrk's view, the server's view and the machine's."""
    offset = server.log_size()
    tree = server.tree()
    cpu0 = (cpu_of(tree), cpu_children(), cpu_machine())
    load0 = load_avg()
    raw = wrk(server.url + path, connections, duration, body, workdir)
    cpu1 = (cpu_of(tree), cpu_children(), cpu_machine())
    load1 = load_avg()
    time.sleep(grace)  # answers still in flight when wrk stopped get logged
    out = summarise(raw, connections)
    wall = raw["duration_us"] / 1e6
    server_cpu, wrk_cpu, all_cpu = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    out["cores_busy"] = {
        "acllm": round(server_cpu / wall, 2),
        "wrk": round(wrk_cpu / wall, 2),
        "other": round(max(0.0, all_cpu - server_cpu - wrk_cpu) / wall, 2),
    }
    out["acllm_cpu_ms_per_request"] = round(1000 * server_cpu / max(1, raw["requests"]), 2)
    out["load_avg"] = [load0, load1]
    out["server"] = _server_log(server, offset)
    out["server"]["children_alive"] = f"{server.alive_children()}/{len(server.children)}"
    out["server"]["exited"] = server.proc.poll()
    out["health_after"] = _health(server.url)
    return out


def warm(server: Server, path: str, body: dict[str, Any] | None, workdir: Path) -> None:
    wrk(server.url + path, 10, 2, body, workdir)
    time.sleep(1)


# --- the targets ---------------------------------------------------------------------------------

FAKE_CONFIG = f"""
default_model = "fake"
default_embedder = "hash"
[models.fake]
backend = "fake"
default = "Hello from the fake model"
latency_s = {FAKE_LATENCY_S}
"""

LOCAL_CONFIG = """
default_model = "local"
default_embedder = "e5"
"""


def _print_points(title: str, points: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    rows = []
    for p in points:
        lat = p["latency_ms"]
        errs = p["socket_errors"]
        sock = f"{errs['connect']}/{errs['read']}/{errs['write']}/{p['timeouts']}"
        statuses = " ".join(f"{k}:{v}" for k, v in p["statuses"].items())
        ok_lat = p["server"]["latency_ms"].get("200", {})
        rows.append(
            [
                p["concurrency"],
                p["rps"],
                p["ok_rps"],
                lat["p50"],
                lat["p95"],
                lat["p99"],
                ok_lat.get("p50", "-"),
                statuses,
                sock,
                p["health_after"].get("status"),
                f"{p['load_avg'][0]}-{p['load_avg'][1]}",
                f"{p['cores_busy']['acllm']}/{p['cores_busy']['wrk']}/{p['cores_busy']['other']}",
            ]
        )
    print_table(
        [
            "conc",
            "req/s",
            "2xx/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "srv 200 p50",
            "statuses",
            "conn/read/write/timeout",
            "healthz",
            "load",
            "cores acllm/wrk/other",
        ],
        rows,
    )


def run_target(
    name: str,
    config: str,
    service: dict[str, Any],
    path: str,
    body: dict[str, Any] | None,
    levels: tuple[int, ...],
    duration: float,
    workdir: Path,
) -> dict[str, Any]:
    print(f"[{name}] starting acllm serve", file=sys.stderr, flush=True)
    with acllm_serve(name, config, service) as server:
        print(f"[{name}] ready in {server.info['start_s']} s", file=sys.stderr, flush=True)
        warm(server, path, body, workdir)
        points = []
        for level in levels:
            print(f"[{name}] {level} clients, {duration:g} s", file=sys.stderr, flush=True)
            points.append(point(server, path, level, duration, body, workdir, grace=3.0))
            time.sleep(2)
    info = {k: v for k, v in server.info.items() if k != "docs"}
    result = {
        "path": path,
        "body": body,
        "service": service,
        "server": info,
        "stopped": server.stopped,
        "points": points,
    }
    _print_points(f"{name}: {path}", points)
    print(f"  server stopped: {server.stopped['how']}, left behind {server.stopped['left_behind']}")
    return result


ARMS = ("direct", "acllm")


def _overhead_run(
    arm: str,
    url: str,
    body: dict[str, Any],
    level: int,
    duration: float,
    workdir: Path,
    server: Server | None,
    procs: dict[str, set[int]],
) -> dict[str, Any]:
    offset = server.log_size() if server else 0
    load0 = load_avg()
    cpu0 = {k: cpu_of(v) for k, v in procs.items()} | {"wrk": cpu_children()}
    all0 = cpu_machine()
    raw = wrk(url, level, duration, body, workdir)
    cpu1 = {k: cpu_of(v) for k, v in procs.items()} | {"wrk": cpu_children()}
    wall = raw["duration_us"] / 1e6
    used = {k: cpu1[k] - cpu0[k] for k in cpu0}
    summary = summarise(raw, level)
    summary["load_avg"] = [load0, load_avg()]
    busy = {k: round(v / wall, 2) for k, v in used.items()}
    busy["other"] = round(max(0.0, cpu_machine() - all0 - sum(used.values())) / wall, 2)
    summary["cores_busy"] = busy
    if server is not None:
        time.sleep(0.5)
        summary["server"] = _server_log(server, offset)
    return summary


def run_overhead(
    rounds: int, duration: float, workdir: Path, delay: float = UPSTREAM_DELAY_S
) -> dict[str, Any]:
    """Direct vs through acllm on one upstream, runs interleaved round by round in alternating
    order."""
    print("[overhead] starting upstream and acllm serve", file=sys.stderr, flush=True)
    with upstream(delay) as (up_url, up_proc), contextlib.ExitStack() as stack:
        config = f"""
default_model = "up"
default_embedder = "hash"
[models.up]
backend = "openai"
base_url = "{up_url}/v1"
model = "upstream-fake"
"""
        servers = {
            "acllm": stack.enter_context(acllm_serve("overhead", config, {})),
        }
        urls = {
            "direct": (up_url + "/v1/chat/completions", DIRECT_BODY),
            **{k: (v.url + "/v1/chat/completions", UP_BODY) for k, v in servers.items()},
        }
        procs = {
            "upstream": {up_proc.pid},
            **{k: v.tree() for k, v in servers.items()},
        }
        for url, body in urls.values():
            wrk(url, 10, 2, body, workdir)  # warm every arm
        by_level: dict[str, Any] = {}
        for level in OVERHEAD_CONCURRENCY:
            runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
            for r in range(rounds):
                order = ARMS if r % 2 == 0 else ARMS[::-1]
                for arm in order:
                    print(
                        f"[overhead] c={level} round {r + 1}/{rounds} {arm}",
                        file=sys.stderr,
                        flush=True,
                    )
                    url, body = urls[arm]
                    one = _overhead_run(
                        arm, url, body, level, duration, workdir, servers.get(arm), procs
                    )
                    one["round"] = r
                    runs[arm].append(one)
                    time.sleep(0.5)
            by_level[str(level)] = _overhead_summary(runs)
    result = {
        "upstream_delay_s": delay,
        "rounds": rounds,
        "duration_s": duration,
        "levels": by_level,
        "stopped": {k: v.stopped for k, v in servers.items()},
    }
    _print_overhead(result)
    return result


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def _overhead_summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    for arm, items in runs.items():
        arms[arm] = {
            q: _median([x["latency_ms"][q] for x in items]) for q in ("p50", "p95", "p99", "mean")
        }
        arms[arm]["rps"] = _median([x["rps"] for x in items])
        arms[arm]["non_2xx"] = sum(x["requests"] - x["ok"] for x in items)
        arms[arm]["socket_errors"] = sum(sum(x["socket_errors"].values()) for x in items)
        arms[arm]["load_avg"] = [
            min(x["load_avg"][0] for x in items),
            max(x["load_avg"][1] for x in items),
        ]
        arms[arm]["cores_busy"] = {
            k: _median([x["cores_busy"][k] for x in items]) for k in items[0]["cores_busy"]
        }
    diffs: dict[str, Any] = {}
    for arm in ARMS[1:]:
        for q in ("p50", "p99"):
            values = [
                round(b["latency_ms"][q] - a["latency_ms"][q], 2)
                for a, b in zip(runs["direct"], runs[arm], strict=True)
            ]
            diffs[f"{arm} {q}"] = {
                "median": _median(values),
                "min": min(values),
                "max": max(values),
                "per_round": values,
            }
    return {"arms": arms, "diff_ms": diffs, "runs": runs}


def _print_overhead(result: dict[str, Any]) -> None:
    print(
        f"\noverhead: upstream waits {result['upstream_delay_s'] * 1000:g} ms, "
        f"{result['rounds']} interleaved rounds of {result['duration_s']:g} s per arm"
    )
    rows = []
    for level, s in result["levels"].items():
        for arm in ARMS:
            a = s["arms"][arm]
            d50 = s["diff_ms"].get(f"{arm} p50")
            d99 = s["diff_ms"].get(f"{arm} p99")
            rows.append(
                [
                    level,
                    arm,
                    a["p50"],
                    a["p95"],
                    a["p99"],
                    f"{d50['median']} ({d50['min']} to {d50['max']})" if d50 else "-",
                    f"{d99['median']}" if d99 else "-",
                    a["rps"],
                    f"{a['non_2xx']}/{a['socket_errors']}",
                    f"{a['load_avg'][0]}-{a['load_avg'][1]}",
                    " ".join(f"{k}:{v}" for k, v in a["cores_busy"].items() if v),
                ]
            )
    print_table(
        [
            "conc",
            "arm",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p50 - direct, median (min to max)",
            "p99 - direct",
            "req/s",
            "non-2xx/sock err",
            "load",
            "cores busy (median)",
        ],
        rows,
    )


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="10 s a point, 4 overhead rounds")
    mode.add_argument("--full", action="store_true", help="20 s a point, 8 overhead rounds")
    parser.add_argument(
        "--only",
        default="cheap,fake,local,overhead",
        help="comma-separated subset of cheap, fake, local, overhead",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per load point")
    args = parser.parse_args(argv)
    quick = not args.full
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    duration = args.duration or (10.0 if quick else 20.0)
    local_duration = args.duration or (10.0 if quick else 15.0)
    rounds = 4 if quick else 8
    overhead_duration = 5.0 if quick else 8.0

    nofile = raise_fd_limit()
    began = time.perf_counter()
    payload: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "machine": machine(),
        "settings": {
            "wrk": subprocess.run(["wrk", "--version"], capture_output=True, text=True)
            .stdout.splitlines()[0]
            .strip(),
            "wrk_threads": 2,
            "wrk_timeout_s": WRK_TIMEOUT_S,
            "rlimit_nofile": list(nofile),
            "duration_s": duration,
            "local_duration_s": local_duration,
            "fake_latency_s": FAKE_LATENCY_S,
            "local_service": LOCAL_SERVICE,
            "workers": 2,
        },
        "targets": {},
    }
    name = f"load-{payload['mode']}"
    with tempfile.TemporaryDirectory(prefix="acllm-load-wrk-") as tmp:
        workdir = Path(tmp)
        try:
            if "cheap" in only:
                payload["targets"]["cheap"] = run_target(
                    "cheap", FAKE_CONFIG, {}, "/healthz", None, CONCURRENCY, duration, workdir
                )
            if "fake" in only:
                payload["targets"]["fake"] = run_target(
                    "fake",
                    FAKE_CONFIG,
                    {},
                    "/v1/chat/completions",
                    FAKE_BODY,
                    CONCURRENCY,
                    duration,
                    workdir,
                )
            if "local" in only:
                payload["targets"]["local"] = run_target(
                    "local",
                    LOCAL_CONFIG,
                    LOCAL_SERVICE,
                    "/v1/chat/completions",
                    LOCAL_BODY,
                    CONCURRENCY,
                    local_duration,
                    workdir,
                )
            if "overhead" in only:
                payload["overhead"] = run_overhead(rounds, overhead_duration, workdir)
        finally:
            payload["elapsed_s"] = round(time.perf_counter() - began, 1)
            payload["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
            path = write_results(name, payload)
            print(f"\nwrote {path} in {payload['elapsed_s']:.0f} s", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
