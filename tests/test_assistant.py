"""The assistant on a real SQLite index with the public test doubles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from acllm import FakeChatModel, HashEmbedder, Message
from acllm.assist.assistant import REFUSALS, Assistant, AssistantOptions, suggestions
from acllm.assist.types import Answer
from acllm.index.base import Hit, SourceWrite
from acllm.index.sqlite import SQLiteIndex
from acllm.ingest.document import Chunk

DOCS = {
    "handbook.md": [
        (
            "section Leave",
            "Employees get 23 days of paid leave per year. Leave must be "
            "requested two weeks in advance.",
        ),
        ("section Hours", "The office opens at 8:30 and closes at 18:00 on weekdays."),
    ],
    "precios.csv": [
        ("row 1", "plan: básico; precio: 9 euros al mes; soporte: correo"),
        ("row 2", "plan: premium; precio: 29 euros al mes; soporte: teléfono"),
    ],
}


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SQLiteIndex]:
    embedder = HashEmbedder()
    idx = SQLiteIndex(tmp_path / "kb.sqlite", name="kb", dim=embedder.dim, embedder=embedder.name)
    writes = []
    for source, parts in DOCS.items():
        chunks = [
            Chunk(
                f"{source}-{i}",
                source,
                source,
                loc,
                text,
                {"kind": "table" if source.endswith(".csv") else "text"},
            )
            for i, (loc, text) in enumerate(parts)
        ]
        vectors = embedder.embed([c.text for c in chunks])
        writes.append(SourceWrite(source, f"hash-{source}", chunks, vectors))
    idx.write(replace=writes)
    yield idx
    idx.close()


def make(index: SQLiteIndex, model: FakeChatModel | None = None, **options: object) -> Assistant:
    opts = AssistantOptions(**{"threshold": 0.2, **options})  # type: ignore[arg-type]
    return Assistant("kb", index, HashEmbedder(), model or FakeChatModel(), opts)


async def test_extractive_answer_cites_the_source_sentence(index: SQLiteIndex) -> None:
    answer = await make(index).ask("How many days of paid leave do employees get?")
    assert not answer.refused and answer.mode == "extractive"
    first = answer.citations[0]
    assert (first.source, first.location) == ("handbook.md", "section Leave")
    assert first.text == "Employees get 23 days of paid leave per year."
    assert f"{first.text} [1]" in answer.answer
    assert answer.confidence >= 0.2 and answer.lang == "en"


async def test_table_rows_are_cited_whole(index: SQLiteIndex) -> None:
    answer = await make(index).ask("¿Cuál es el precio del plan premium?")
    cited = {(c.source, c.location) for c in answer.citations}
    assert ("precios.csv", "row 2") in cited
    row = next(c for c in answer.citations if c.location == "row 2")
    assert row.text == DOCS["precios.csv"][1][1]


async def test_refuses_in_the_questions_language(index: SQLiteIndex) -> None:
    strict = make(index, threshold=0.95)
    es = await strict.ask("¿Quién ganó el mundial de fútbol de 1998?")
    en = await strict.ask("Who won the 1998 football world cup?")
    assert es.refused and es.answer == REFUSALS["es"] and es.citations == []
    assert en.refused and en.answer == REFUSALS["en"]


async def test_generative_prompt_numbers_sources_and_maps_citations(index: SQLiteIndex) -> None:
    model = FakeChatModel(["The office opens at 8:30 [1]."])
    answer = await make(index, model, mode="generative").ask("When does the office open?")
    sent, opts = model.calls[0]
    prompt = sent[-1].content
    assert "[1] (handbook.md, section Hours)" in prompt and "Question: When does" in prompt
    assert opts.max_tokens == 256
    assert [(c.n, c.source, c.location) for c in answer.citations] == [
        (1, "handbook.md", "section Hours")
    ]
    assert not answer.refused


async def test_generative_budget_drops_sources_instead_of_overflowing(index: SQLiteIndex) -> None:
    roomy = FakeChatModel(["ok [1]"], context_window=4096)
    tight = FakeChatModel(["ok [1]"], context_window=420)
    await make(index, roomy, mode="generative").ask("leave days office hours plan price")
    await make(index, tight, mode="generative").ask("leave days office hours plan price")
    count = lambda m: m.calls[0][0][-1].content.count("\n[")  # noqa: E731
    assert count(tight) < count(roomy)
    assert tight.count_tokens(tight.calls[0][0]) + 256 <= 420


async def test_follow_up_is_made_standalone(index: SQLiteIndex) -> None:
    history = [Message("user", "When does the office open?"), Message("assistant", "At 8:30.")]
    concat = await make(index).ask("And when does it close?", history)
    assert concat.question == "When does the office open? And when does it close?"
    model = FakeChatModel(["When does the office close?"])
    rewritten = await make(index, model, rewrite="model").ask("And when?", history)
    assert rewritten.question == "When does the office close?"
    assert "Last question: And when?" in model.calls[0][0][-1].content


async def test_stream_yields_text_then_the_answer(index: SQLiteIndex) -> None:
    model = FakeChatModel(["Employees get 23 days [1]."])
    items = [i async for i in make(index, model, mode="generative").stream("paid leave days?")]
    assert isinstance(items[-1], Answer)
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == items[-1].answer


def test_answer_json_has_the_documented_fields(index: SQLiteIndex) -> None:
    import asyncio

    data = asyncio.run(make(index).ask("paid leave per year")).as_dict()
    assert {"answer", "refused", "citations", "usage"} <= set(data)
    assert {"source", "location", "text"} <= set(data["citations"][0])
    assert {"prompt_tokens", "completion_tokens", "latency_s"} <= set(data["usage"])
    assert np.isfinite(data["confidence"])


async def test_named_assistant_is_built_from_the_config(tmp_path: Path) -> None:
    from acllm import Runtime, Settings, UserError
    from acllm.config import AssistantSpec, BackendSpec

    settings = Settings(
        data_dir=tmp_path,
        default_embedder="hash",
        default_model="f",
        models={"f": BackendSpec(backend="fake")},
        assistants={"help": AssistantSpec(index="kb", threshold=0.2, top_k=3)},
    )
    runtime = Runtime(settings)
    index = runtime.index("kb")
    embedder = runtime.embedder()
    chunk = Chunk("c1", "faq", "faq.md", "section Pets", "No pets are allowed in the office.")
    index.write(replace=[SourceWrite("faq", "h", [chunk], embedder.embed([chunk.text]))])
    assistant = runtime.assistant("help")
    assert assistant.options.top_k == 3 and assistant.index is index
    answer = await assistant.ask("Are pets allowed in the office?")
    assert answer.citations[0].location == "section Pets"
    with pytest.raises(UserError, match="unknown assistant 'nope'"):
        runtime.assistant("nope")
    with pytest.raises(UserError, match="invalid index name"):
        runtime.index("../etc")
    runtime.close()


def test_suggestions_name_the_heading_stored_with_a_section_else_what_the_location_says() -> None:
    def hit(source: str, location: str, **metadata: str) -> Hit:
        return Hit(Chunk(f"c{source}{location}", "s", source, location, "text", metadata), 0.5, 1)

    big = "Más de 100 € > Envíos"  # a heading that holds the path separator
    hits = [
        hit("tarifas.md", f"section Tarifas > {big}", heading=big),
        hit("otra.md", "section Otra", heading=big.upper()),  # the same topic: named once
        hit("guia.md", "section Guía > Horarios (2)"),  # indexed before headings were stored
        hit("data/precios_2024.csv", "rows 1-4"),
        hit("extra.md", "section Extra", heading="Extra"),  # past the limit of 3
    ]
    assert suggestions(hits, "es") == [
        "¿Qué dicen los documentos sobre Más de 100 € > Envíos?",
        "¿Qué dicen los documentos sobre Horarios?",
        "¿Qué dicen los documentos sobre precios 2024?",
    ]
    assert suggestions(hits[:1], "en") == ["What do the documents say about Más de 100 € > Envíos?"]
