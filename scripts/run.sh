#!/usr/bin/env bash
# `make run`: ingest the example data (only what changed since last time), then serve it: the web
# chat and the OpenAI-compatible API on http://127.0.0.1:${PORT:-8000}, on the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
export ACLLM_HOME="${ACLLM_HOME:-$PWD/.acllm}"
acllm() { .venv/bin/acllm "$@"; }
config=examples/acllm.toml

echo "== ingesting examples/data into the index 'bicis' (data folder: $ACLLM_HOME)"
acllm ingest examples/data --index bicis --config "$config"
acllm ingest sqlite:///examples/data/tiendas.db --table tiendas --index bicis --config "$config"

echo
echo "== serving: open http://127.0.0.1:${PORT:-8000}/ for the chat, /docs for the API (Ctrl-C stops)"
exec .venv/bin/acllm serve --host 127.0.0.1 --port "${PORT:-8000}" --config "$config"
