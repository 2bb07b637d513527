"""acllm: build private LLM applications on a local model or any OpenAI-compatible endpoint."""

__version__ = "0.1.0"
