"""Executable docs: the config reference in docs/configuration.md is a valid config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def test_every_toml_block_in_the_configuration_reference_loads(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        path = tmp_path / f"acllm-{i}.toml"
        path.write_text(block, encoding="utf-8")
        load_settings(path, environ={})


def readme_python(containing: str) -> str:
    """The README's Python block that contains ``containing``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if containing in b]
    assert len(blocks) == 1, f"one README python block with {containing!r}"
    return blocks[0]


@pytest.mark.model
def test_readme_python_snippet_runs(home: Path) -> None:
    snippet = readme_python("from acllm import Runtime, Tasks")
    printed: list[object] = []
    exec(snippet, {"print": printed.append})
    translated, sentiment = printed
    assert isinstance(translated, dict) and translated["source_lang"] == "es"
    assert isinstance(sentiment, dict) and sentiment["label"] in ("positive", "negative")
