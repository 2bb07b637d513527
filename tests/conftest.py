"""Shared fixtures. Heavy models load once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def local_model() -> Iterator[object]:
    from acllm.models.local import LocalChat

    model = LocalChat()
    yield model
    model.close()


@pytest.fixture(scope="session")
def e5() -> Iterator[object]:
    from acllm.embed.e5 import E5Embedder

    yield E5Embedder()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated ACLLM_HOME and a working directory without acllm.toml."""
    monkeypatch.setenv("ACLLM_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path
