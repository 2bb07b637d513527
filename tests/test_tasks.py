"""Task logic with the public test doubles: prompts, parsing, schemas, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from acllm import ContextOverflowError, FakeChatModel, HashEmbedder, ServiceError, UserError
from acllm.tasks import (
    PROMPTS,
    SCHEMAS,
    TaskContext,
    check_rules,
    correct,
    paraphrase,
    same_meaning,
    sentiment,
    summarize,
    translate,
)
from acllm.tasks.check_rules import parse_rules
from acllm.tasks.correct import word_edits
from acllm.tasks.prompts import load
from acllm.tasks.summarize import split_sentences


def ctx(*replies: str, embedder: bool = True, window: int = 4096) -> TaskContext:
    return TaskContext(
        model=FakeChatModel(replies, context_window=window),
        embedder=HashEmbedder() if embedder else None,
    )


PROMPT_FILES = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[1] / "src" / "acllm" / "tasks" / "prompts").glob(
        "*.toml"
    )
)


def test_every_task_prompt_has_a_file() -> None:
    assert set(PROMPTS) <= set(PROMPT_FILES)


@pytest.mark.parametrize("name", PROMPT_FILES)
def test_every_prompt_file_is_versioned_and_renders(name: str) -> None:
    prompt = load(name)
    assert prompt.version >= 1
    assert prompt.examples, "small models need few-shot examples"
    assert {e.lang.split("-")[0] for e in prompt.examples} >= {"en", "es"}
    values = {
        "text": "TEXT",
        "source": "English",
        "target": "Spanish",
        "labels": "a, b",
        "max_words": "20",
        "a": "A",
        "b": "B",
        "rule": "RULE",
        "sources": "[1] S",
        "question": "Q?",
        "language": "Spanish",
        "refusal": "No.",
        "history": "user: hi",
        "rubric": "RUBRIC",
        "input": "INPUT",
        "output": "OUTPUT",
        "reference_block": "Reference: R",
    }
    messages = prompt.render(lang="es", **values)
    assert messages[0].role == "system" and messages[-1].role == "user"
    assert "$" not in messages[-1].content  # every placeholder filled
    roles = [m.role for m in messages[1:-1]]
    assert roles == ["user", "assistant"] * (len(roles) // 2)


def test_examples_in_the_texts_language_are_used_alone() -> None:
    messages = load("correct").render(lang="es", text="hola")
    shots = [m.content for m in messages[1:-1]]
    assert shots and all(
        any(c in s for c in "áéíóúñ¿") or "ofisina" in s or "manzana" in s for s in shots[::2]
    )


async def test_translate_sends_language_pair_examples_and_returns_schema() -> None:
    c = ctx("¿Dónde está el hotel?")
    result = await translate(c, "Where is the hotel?", target="es")
    jsonschema.validate(result, SCHEMAS["translate"])
    assert result == {
        **result,
        "translation": "¿Dónde está el hotel?",
        "source_lang": "en",
        "target_lang": "es",
    }
    sent, _ = c.model.calls[0]  # type: ignore[attr-defined]
    assert "from English to Spanish" in sent[0].content
    assert sent[1].content == "Where is the train station?"  # an en-es example
    assert sent[-1].content == "Where is the hotel?"


async def test_translate_same_language_costs_no_model_call() -> None:
    c = ctx()
    result = await translate(c, "Hola, ¿qué tal estás hoy?", target="es", source="es")
    assert result["translation"] == "Hola, ¿qué tal estás hoy?"
    assert c.model.calls == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["", "   \n"])
async def test_empty_text_is_a_user_error(bad: str) -> None:
    with pytest.raises(UserError, match="empty"):
        await translate(ctx(), bad, target="es")


async def test_unknown_language_code() -> None:
    with pytest.raises(UserError, match="unknown target language code 'klingon'"):
        await translate(ctx(), "hello", target="klingon")
    with pytest.raises(UserError, match="unknown language code"):
        await sentiment(ctx(), "hello", lang="zz")


async def test_text_over_the_budget_says_by_how_much() -> None:
    c = TaskContext(model=FakeChatModel(), embedder=HashEmbedder(), max_input_tokens=10)
    with pytest.raises(ContextOverflowError) as info:
        await summarize(c, " ".join(["word"] * 50))
    assert info.value.over == info.value.needed - 10 > 0
    assert "too many" in str(info.value)


async def test_sentiment_embedding_separates_anchor_like_texts() -> None:
    c = ctx()
    pos = await sentiment(c, "I love it, this is wonderful and great.")
    neg = await sentiment(c, "I hate it, this is terrible and awful.")
    jsonschema.validate(pos, SCHEMAS["sentiment"])
    assert pos["label"] == "positive" and neg["label"] == "negative"
    assert abs(sum(pos["scores"].values()) - 1) < 1e-3


async def test_sentiment_generate_is_constrained_to_the_labels() -> None:
    c = ctx('{"label": "negative"}', embedder=False)
    result = await sentiment(c, "awful", method="generate", labels=("positive", "negative"))
    assert result["label"] == "negative" and set(result["scores"]) == {"positive", "negative"}
    _, opts = c.model.calls[0]  # type: ignore[attr-defined]
    assert opts.schema["properties"]["label"]["enum"] == ["positive", "negative"]


async def test_sentiment_rejects_bad_labels_and_garbage_json() -> None:
    with pytest.raises(UserError, match="labels"):
        await sentiment(ctx(), "text", labels=("happy", "sad"))
    with pytest.raises(ServiceError, match="invalid JSON"):
        await sentiment(ctx("not json", embedder=False), "text", method="generate")
    with pytest.raises(ServiceError, match="invalid JSON"):
        await sentiment(ctx('{"label": "ecstatic"}', embedder=False), "t", method="generate")


async def test_summarize_extractive_keeps_order_and_budget() -> None:
    text = (
        "The council approved the budget on Monday. "
        "Spending on buses rises. "
        "The weather was sunny. "
        "The budget includes money for buses and trains. "
        "A dog barked somewhere. "
        "The council budget takes effect in January."
    )
    result = await summarize(ctx(), text, max_words=16)
    jsonschema.validate(result, SCHEMAS["summarize"])
    assert result["words"] <= 16
    picked = split_sentences(result["summary"])
    positions = [text.index(s) for s in picked]
    assert positions == sorted(positions) and picked
    assert "dog" not in result["summary"]


async def test_summarize_short_text_is_returned_as_is() -> None:
    result = await summarize(ctx(), "Short text here.", max_words=20)
    assert result["summary"] == "Short text here."


async def test_summarize_generate_uses_the_model() -> None:
    text = " ".join(f"Sentence number {i} says something." for i in range(30))
    result = await summarize(ctx("A short summary.", embedder=False), text, method="generate")
    assert result == {**result, "summary": "A short summary.", "method": "generate"}
    with pytest.raises(UserError, match="too small"):
        await summarize(ctx(), text, max_words=2)


async def test_paraphrase_and_same_meaning() -> None:
    rewrite = await paraphrase(ctx("The train was late due to snow."), "Snow delayed the train.")
    jsonschema.validate(rewrite, SCHEMAS["paraphrase"])
    assert rewrite["paraphrase"] == "The train was late due to snow."
    assert -1 <= rewrite["similarity"] <= 1
    same = await same_meaning(ctx(), "the red car is fast", "the red car is fast", threshold=0.9)
    diff = await same_meaning(ctx(), "the red car is fast", "bananas grow in Ecuador")
    jsonschema.validate(same, SCHEMAS["same_meaning"])
    assert same["same"] and not diff["same"] and same["score"] > diff["score"]
    gen = await same_meaning(ctx('{"same": false}'), "a b", "b a", method="generate")
    assert gen["same"] is False and gen["method"] == "generate"


def test_word_edits_match_the_change() -> None:
    edits = word_edits("She have two cat .", "She has two cats .")
    assert edits == [
        {"original": "have", "replacement": "has", "offset": 4},
        {"original": "cat", "replacement": "cats", "offset": 13},
    ]
    assert word_edits("same text", "same text") == []
    inserted = word_edits("a c", "a b c")
    assert inserted == [{"original": "", "replacement": "b", "offset": 2}]


async def test_correct_lists_edits_and_rejects_rewrites() -> None:
    ok = await correct(ctx("She has two cats."), "She have two cat.")
    jsonschema.validate(ok, SCHEMAS["correct"])
    assert ok["changed"] and not ok["rejected"]
    assert [e["replacement"] for e in ok["edits"]] == ["has", "cats."]
    bad = await correct(ctx("Completely unrelated words about the ocean."), "She have two cat.")
    assert bad["rejected"] and bad["corrected"] == "She have two cat." and bad["edits"] == []


async def test_check_rules_one_verdict_per_rule() -> None:
    c = ctx('{"passed": true, "reason": "greets"}', '{"passed": false, "reason": "no date"}')
    result = await check_rules(c, "Hola Ana", ["Must greet", "Must give a date"])
    jsonschema.validate(result, SCHEMAS["check_rules"])
    assert [r["passed"] for r in result["results"]] == [True, False]
    assert result["passed"] is False and len(c.model.calls) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([], "empty"),
        ("[1, 2]", "list of strings"),
        ("[not json", "not valid JSON"),
        (["x" * 600], "longer than"),
        ([f"rule {i}" for i in range(60)], "at most"),
    ],
)
def test_invalid_rules_lists(rules: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_rules(rules)  # type: ignore[arg-type]


def test_rules_from_text_and_files(tmp_path: Path) -> None:
    assert parse_rules("- Be polite\n# comment\n* Mention the price\n") == [
        "Be polite",
        "Mention the price",
    ]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(["A", "B"]))
    assert parse_rules(path) == ["A", "B"]
    with pytest.raises(UserError, match="cannot read"):
        parse_rules(tmp_path / "missing.txt")


def test_sentences_split_when_glued_but_not_after_abbreviations() -> None:
    text = "It rained in Korea.This week the team arrived. Then Mr. Smith left. El Sr. Gil llegó."
    assert split_sentences(text) == [
        "It rained in Korea.",
        "This week the team arrived.",
        "Then Mr. Smith left.",
        "El Sr. Gil llegó.",
    ]


async def test_extractive_summary_never_exceeds_the_budget() -> None:
    one_long_sentence = "word " * 120 + "end."
    result = await summarize(ctx(), one_long_sentence + " Short one here.", max_words=30)
    assert result["words"] <= 30 and result["summary"].endswith("…")
