"""Incremental ingestion on real files into a real SQLite index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acllm import HashEmbedder
from acllm.index.sqlite import SQLiteIndex
from acllm.ingest import sources
from acllm.ingest.chunking import chunk_documents
from acllm.ingest.pipeline import Ingestor, IngestReport


def corpus(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "handbook.md").write_text(
        "# Leave\nEmployees get 23 days of paid leave.\n\n# Hours\nThe office opens at 8:30.\n"
    )
    (root / "docs" / "plans.csv").write_text("plan,price\nbasic,9\npremium,29\n")
    (root / "docs" / "faq.json").write_text(json.dumps([{"q": "Pets?", "a": "No pets."}]))
    (root / "docs" / "broken.json").write_text("{not json")
    return root / "docs"


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SQLiteIndex]:
    idx = SQLiteIndex(tmp_path / "kb.sqlite", name="kb", dim=256, embedder="hash")
    yield idx
    idx.close()


def ingest(index: SQLiteIndex, root: Path) -> IngestReport:
    pending, errors = sources.from_path(root)
    present = {p.source_id for p in pending}
    remove = [s for s in sources.owned_by(root, list(index.sources())) if s not in present]
    report = Ingestor(index, HashEmbedder(), chunker=chunk_documents).run(pending, remove=remove)
    report.errors[:0] = errors
    return report


def test_first_run_writes_everything_and_reports_bad_files(
    index: SQLiteIndex, tmp_path: Path
) -> None:
    root = corpus(tmp_path)
    report = ingest(index, root)
    assert report.written == 3 and report.unchanged == 0
    assert [Path(e.source).name for e in report.errors] == ["broken.json"]
    held = index.sources()
    assert str((root / "plans.csv").resolve()) in held
    assert index.stats()["chunks"] == report.chunks > 0


def test_rerun_embeds_only_what_changed_and_removes_deleted(
    index: SQLiteIndex, tmp_path: Path
) -> None:
    root = corpus(tmp_path)
    ingest(index, root)
    again = ingest(index, root)
    assert again.written == 0 and again.unchanged == 3 and again.tokens == 0
    assert [Path(e.source).name for e in again.errors] == [
        "broken.json"
    ]  # still reported, not stored
    (root / "handbook.md").write_text("# Leave\nEmployees get 25 days of paid leave.\n")
    (root / "faq.json").unlink()
    third = ingest(index, root)
    assert (third.written, third.removed) == (1, 1)
    texts = [h.chunk.text for h in index.keyword_search("paid leave days", 5)]
    assert any("25 days" in t for t in texts) and not any("23 days" in t for t in texts)


def test_other_roots_are_not_removed(index: SQLiteIndex, tmp_path: Path) -> None:
    ingest(index, corpus(tmp_path / "a"))
    other = tmp_path / "b"
    other.mkdir()
    (other / "note.txt").write_text("A separate note about parking.")
    ingest(index, other)
    assert len(index.sources()) == 4  # a's three readable files + b's note


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from acllm import HashEmbedder
    from acllm.index.sqlite import SQLiteIndex
    from acllm.ingest import sources
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.pipeline import Ingestor

    class Slow(HashEmbedder):
        def embed(self, texts, kind="passage"):
            time.sleep(0.05)
            return super().embed(texts, kind)

    root, db = Path(sys.argv[1]), Path(sys.argv[2])
    index = SQLiteIndex(db, name="kb", dim=256, embedder="hash")
    pending, _ = sources.from_path(root)
    Ingestor(index, Slow(), chunker=chunk_documents, batch_chunks=3).run(pending)
""")


def test_killed_mid_run_leaves_only_whole_batches(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(120):
        (root / f"doc{i:03}.txt").write_text(f"Document {i} talks about topic {i}.")
    db = tmp_path / "kb.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(root), str(db)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if db.exists():
            probe = SQLiteIndex(db, name="kb", dim=256, embedder="hash")
            done = len(probe.sources())
            probe.close()
            if done >= 6:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    index = SQLiteIndex(db, name="kb", dim=256, embedder="hash")
    held = index.sources()
    assert 6 <= len(held) < 120 and len(held) % 3 == 0  # whole batches of 3 sources only
    assert index.stats()["chunks"] == len(held)  # every held source has its chunk
    rerun = ingest(index, root)
    assert rerun.unchanged == len(held) and rerun.written == 120 - len(held)
    index.close()
