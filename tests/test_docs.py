"""Executable docs: the config reference in docs/configuration.md is a valid config."""

from __future__ import annotations

import re
from pathlib import Path

from acllm.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_example_is_valid(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert block is not None
    path = tmp_path / "acllm.toml"
    path.write_text(block.group(1), encoding="utf-8")
    settings = load_settings(path, environ={})
    assert settings.models["main"].backend == "router"
    assert settings.models["local"].options()["threads"] == 1
    assert settings.tasks.max_input_tokens == 1500
