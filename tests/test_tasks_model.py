"""Every task on the real embedded model, from Python and from the CLI, in English and Spanish.

Quality is measured in bench/ (docs/BENCHMARKS.md); here the contract is checked: valid,
schema-checked output in the text's language, whatever the tiny model says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from acllm import Runtime, Settings, Tasks
from acllm.tasks import SCHEMAS

pytestmark = pytest.mark.model

TEXTS = {
    "en": {
        "short": "The delivery was late and the box was damaged.",
        "long": (
            "The city opened a new library on Monday. It has 40,000 books and a maker space. "
            "Entry is free for residents. The mayor said it cost 12 million euros. "
            "Critics said the money should have gone to schools. The library opens daily."
        ),
        "pair": "The library opens every day.",
        "rules": ["Must mention a price", "Must not insult anyone"],
        "target": "es",
    },
    "es": {
        "short": "El envío llegó tarde y la caja estaba rota.",
        "long": (
            "La ciudad abrió una biblioteca nueva el lunes. Tiene 40.000 libros y un taller. "
            "La entrada es gratuita para los vecinos. El alcalde dijo que costó 12 millones. "
            "Los críticos dijeron que el dinero debía ir a los colegios. Abre todos los días."
        ),
        "pair": "La biblioteca abre todos los días.",
        "rules": ["Debe mencionar un precio", "No debe insultar a nadie"],
        "target": "en",
    },
}


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tasks]:
    runtime = Runtime(Settings(data_dir=tmp_path_factory.mktemp("home")))
    yield Tasks(runtime)
    runtime.close()


def calls(tasks: Tasks, lang: str) -> dict[str, Any]:
    t = TEXTS[lang]
    return {
        "translate": lambda: tasks.translate(t["short"], target=t["target"]),
        "sentiment": lambda: tasks.sentiment(t["short"]),
        "sentiment_generate": lambda: tasks.sentiment(t["short"], method="generate"),
        "summarize": lambda: tasks.summarize(t["long"], max_words=20),
        "summarize_generate": lambda: tasks.summarize(t["long"], max_words=20, method="generate"),
        "paraphrase": lambda: tasks.paraphrase(t["short"]),
        "same_meaning": lambda: tasks.same_meaning(t["long"].split(". ")[-1], t["pair"]),
        "same_meaning_generate": lambda: tasks.same_meaning(
            t["short"], t["pair"], method="generate"
        ),
        "correct": lambda: tasks.correct(t["short"]),
        "check_rules": lambda: tasks.check_rules(t["short"], t["rules"]),
    }


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize(
    "name",
    [
        "translate",
        "sentiment",
        "sentiment_generate",
        "summarize",
        "summarize_generate",
        "paraphrase",
        "same_meaning",
        "same_meaning_generate",
        "correct",
        "check_rules",
    ],
)
async def test_task_output_is_schema_valid(tasks: Tasks, name: str, lang: str) -> None:
    result = await calls(tasks, lang)[name]()
    schema = SCHEMAS[name.removesuffix("_generate")]
    jsonschema.validate(result, schema)
    if "lang" in result:
        assert result["lang"] == lang
    if name == "translate":
        assert result["source_lang"] == lang and result["target_lang"] == TEXTS[lang]["target"]
    if name == "check_rules":
        assert [r["rule"] for r in result["results"]] == TEXTS[lang]["rules"]


def test_sentiment_embedding_gets_the_obvious_cases(tasks: Tasks) -> None:
    import asyncio

    async def label(text: str) -> str:
        return str((await tasks.sentiment(text))["label"])

    async def run() -> list[str]:
        return [
            await label(t)
            for t in (
                "I absolutely love this phone, it is perfect.",
                "Este hotel es horrible, nunca volveré.",
                "¡Qué maravilla de restaurante, todo buenísimo!",
                "This was the worst customer service I have ever had.",
            )
        ]

    assert asyncio.run(run()) == ["positive", "negative", "positive", "negative"]


CLI = Path(sys.executable).parent / "acllm"
CLI_CASES = [
    ["translate", "--to", "es", "Good morning, how are you?"],
    ["translate", "--to", "en", "Buenos días, ¿cómo estás?"],
    ["sentiment", "I love this place."],
    ["sentiment", "Odio esperar tanto."],
    ["summarize", "--max-words", "12", TEXTS["en"]["long"]],
    ["summarize", "--max-words", "12", TEXTS["es"]["long"]],
    ["paraphrase", "The shop closes at eight."],
    ["paraphrase", "La tienda cierra a las ocho."],
    ["paraphrase", "--compare", "Shops close at 8.", "The shop closes at eight."],
    ["correct", "He have two dog."],
    ["correct", "Ella tiene dos perro."],
    ["check-rules", "--rule", "Must greet", "Hello Ana, see you Monday."],
    ["check-rules", "--rule", "Debe saludar", "Hola Ana, nos vemos el lunes."],
]


@pytest.mark.parametrize("argv", CLI_CASES, ids=lambda a: "-".join(a[:2]))
def test_cli_prints_one_schema_valid_document(argv: list[str], home: Path) -> None:
    done = subprocess.run(
        [str(CLI), *argv, "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    name = argv[0].replace("-", "_")
    if "--compare" in argv:
        name = "same_meaning"
    jsonschema.validate(result, SCHEMAS[name])
    assert "Traceback" not in done.stderr
