"""``acllm models`` and ``acllm config``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from acllm.cli.output import emit


def _models(args: argparse.Namespace) -> int:
    from acllm.config import load_settings
    from acllm.models.catalog import listing

    rows = listing()
    settings = load_settings(args.config)
    configured = []
    for name, spec in settings.models.items():
        opts = spec.options()
        path = opts.get("path")
        configured.append(
            {
                "name": name,
                "backend": spec.backend,
                "target": opts.get("base_url") or path or "packaged SmolLM2-135M",
                "available": Path(path).expanduser().is_file() if path else None,
            }
        )
    data = {"families": rows, "configured": configured}
    lines = [f"{'family':32} {'kind':9} {'licence':28} {'OSD':4} installed"]
    for r in rows:
        lines.append(
            f"{r['name']:32} {r['kind']:9} {r['licence']:28} "
            f"{'yes' if r['osd'] else 'no':4} {'yes' if r['installed'] else '-'}"
            + (f"  ({r['note']})" if r["note"] else "")
        )
    lines.append("\nconfigured models:")
    lines += [f"  {c['name']:12} {c['backend']:8} {c['target']}" for c in configured]
    return emit(data, as_json=args.json, text="\n".join(lines))


def _config(args: argparse.Namespace) -> int:
    from acllm.config import load_settings

    settings = load_settings(args.config)
    data: dict[str, Any] = json.loads(settings.model_dump_json())
    return emit(data, as_json=args.json, text=json.dumps(data, indent=2, ensure_ascii=False))


def run(args: argparse.Namespace) -> int:
    return _models(args) if args.command == "models" else _config(args)
