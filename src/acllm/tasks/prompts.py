"""Versioned prompt files (``prompts/<task>.toml``) and their rendering into chat messages.

A prompt file holds ``version``, a ``system`` text, a ``user`` template and few-shot ``examples``
(user/assistant pairs, tagged with a language). Templates use ``$name`` placeholders
(string.Template), so JSON braces in examples need no escaping. Small models follow examples far
better than instructions, so every task ships examples in English and Spanish.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from string import Template

from acllm.errors import UserError
from acllm.types import Message


@dataclass(frozen=True)
class Example:
    user: str
    assistant: str
    lang: str = "en"


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    system: str
    user: str
    examples: tuple[Example, ...] = field(default_factory=tuple)

    def render(self, *, shots: int = 4, lang: str | None = None, **values: str) -> list[Message]:
        """System, few-shot turns, then the filled-in user turn.

        Examples in ``lang`` are used alone when there are any: a tiny model copies the language of
        its examples, so mixing them makes it answer in the wrong one.
        """
        same = [e for e in self.examples if e.lang == lang]
        chosen = (same or list(self.examples))[:shots]
        messages = [Message("system", Template(self.system).safe_substitute(values))]
        for ex in chosen:
            messages += [Message("user", ex.user), Message("assistant", ex.assistant)]
        try:
            messages.append(Message("user", Template(self.user).substitute(values)))
        except KeyError as exc:
            raise UserError(f"prompt '{self.name}' needs a value for {exc}") from None
        return messages


@cache
def load(name: str) -> Prompt:
    try:
        raw = resources.files("acllm.tasks").joinpath(f"prompts/{name}.toml").read_text("utf-8")
    except FileNotFoundError:
        raise UserError(f"no prompt named '{name}'") from None
    data = tomllib.loads(raw)
    examples = tuple(
        Example(e["user"], e["assistant"], e.get("lang", "en")) for e in data.get("examples", [])
    )
    return Prompt(name, int(data["version"]), data["system"], data["user"], examples)
