#!/usr/bin/env bash
# `make demo`: answers from the example data and the six tasks, end to end from the CLI on the
# embedded default (no network). `make run` serves the same data over HTTP with a web chat.
set -euo pipefail
cd "$(dirname "$0")/.."
acllm() { .venv/bin/acllm "$@"; }
# Print each command as a user would type it, then run it.
show() {
  local shown="" arg
  for arg in "$@"; do
    case "$arg" in *[[:space:]]*) shown+=" \"$arg\"" ;; *) shown+=" $arg" ;; esac
  done
  printf '\n$ acllm%s\n' "$shown"
  acllm "$@"
}

# Answers from your own data: a folder (PDF with a table, CSV, JSON, Markdown) and a SQLite table.
export ACLLM_HOME="${ACLLM_HOME:-$PWD/.acllm}"
show ingest examples/data --index bicis
show ingest sqlite:///examples/data/tiendas.db --table tiendas --index bicis
show ask "¿Cuántos días tengo para devolver una bici?" --index bicis
show ask "How many days of paid leave do full-time employees get?" --index bicis
show ask "¿Cuánto cuesta la revisión completa?" --index bicis
show ask "¿Cuál es el horario de la tienda de Santander?" --index bicis
show ask "Who won the 2010 football World Cup?" --index bicis
show ask "¿Cuál es la capital de Australia?" --index bicis

# The six ready-made language tasks.
show models
show translate --to es "The meeting starts at ten tomorrow."
show translate --to en "El paquete llegará el lunes por la mañana."
show sentiment "The battery lasts all day and the screen is gorgeous."
show sentiment "La atención al cliente fue lenta y nadie resolvió mi problema."
printf '\n$ acllm summarize --max-words 30 < examples/texts/report_en.txt\n'
acllm summarize --max-words 30 < examples/texts/report_en.txt
printf '\n$ acllm summarize --max-words 30 < examples/texts/informe_es.txt\n'
acllm summarize --max-words 30 < examples/texts/informe_es.txt
show paraphrase "Please send the signed contract before Friday."
show paraphrase --compare "Snow delayed the train." "The train was late because of the snow."
show paraphrase --compare "El perro mordió al cartero." "El cartero mordió al perro."
show correct "She dont have no time for read the reports."
show correct "Mañana vamos a ir a la playa con mis amigo."
show check-rules --rule "Must greet the customer" --rule "Must mention a delivery date" \
  "Hola Marta, tu pedido llegará el jueves 12. Un saludo."
printf '\n$ acllm sentiment --json "Me encanta este sitio"\n'
acllm sentiment --json "Me encanta este sitio"
