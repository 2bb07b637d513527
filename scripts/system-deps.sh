#!/usr/bin/env bash
# Installs the Debian packages the test suite needs: OCR of image-only PDF pages (tesseract), a real
# Redis for the Redis KV backend's tests (redis-server) and a browser for the web UI tests (chromium).
# Idempotent: runs `apt-get update` and `apt-get install` only when a package is missing.
# Safe to run as root in CI; as another user it uses sudo when available.
set -euo pipefail

# OCR for image-only PDF pages; Redis and Chromium for the service tests; wrk for the load benchmark.
PACKAGES=(tesseract-ocr tesseract-ocr-eng tesseract-ocr-spa redis-server chromium wrk)

missing=()
for pkg in "${PACKAGES[@]}"; do
    # dpkg-query prints "install ok installed" only for a fully installed package.
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "system-deps: all present (${PACKAGES[*]})"
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "system-deps: missing ${missing[*]} and not root (no sudo)" >&2
        exit 1
    fi
fi

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
