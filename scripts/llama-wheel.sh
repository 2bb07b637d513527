#!/usr/bin/env bash
# Builds llama-cpp-python once and caches the wheel outside the repo, so `make` and CI reuse it.
# llama-cpp-python ships no prebuilt wheel; compiling takes about 5 minutes on 2 cores.
# GGML_NATIVE=OFF: the wheel targets generic x86-64 (+AVX2/FMA/F16C, which ggml enables by default
# without -march=native), never this machine's exact CPU, so a cached wheel runs on any like it.
# Prints the path of the wheel on stdout.
set -euo pipefail
version="${LLAMA_CPP_VERSION:-0.3.36}"
cache="${ACLLM_WHEEL_CACHE:-$HOME/.cache/acllm/wheels}"
python="${PYTHON:-python3}"
flags="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF"
# The cache key covers version, flags and interpreter, so a change of any rebuilds.
key=$(printf '%s|%s|%s' "$version" "$flags" "$("$python" -c 'import sys; print(sys.implementation.cache_tag)')" | sha256sum | cut -c1-12)
dir="$cache/llama-$version-$key"
wheel=$(ls "$dir"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $version (one time, about 5 minutes) into $dir" >&2
  mkdir -p "$dir.tmp"
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$python" -m pip wheel --no-deps --no-cache-dir -w "$dir.tmp" "llama-cpp-python==$version" >&2
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  wheel=$(ls "$dir"/llama_cpp_python-*.whl | head -n 1)
fi
echo "$wheel"
