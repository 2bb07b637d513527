"""OCR for image-only PDF pages through Debian's ``tesseract`` binary (no Python binding needed).

Install with ``apt-get install tesseract-ocr tesseract-ocr-spa`` (scripts/system-deps.sh does).
"""

from __future__ import annotations

import functools
import shutil
import subprocess

INSTALL_HINT = "install tesseract-ocr tesseract-ocr-spa"


class OcrUnavailable(Exception):
    """No tesseract binary, or none of the wanted languages installed."""


class OcrFailed(Exception):
    """tesseract ran and failed on this image."""


@functools.lru_cache(maxsize=4)
def _installed_languages(exe: str) -> frozenset[str]:
    try:
        out = subprocess.run(
            [exe, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    # The first line is a title ("List of available languages in ..."), then one code a line.
    return frozenset(line.strip() for line in out.stdout.splitlines()[1:] if line.strip())


def languages(wanted: str) -> str:
    """The installed subset of ``wanted`` ("spa+eng"), or OcrUnavailable."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise OcrUnavailable(f"tesseract not found; {INSTALL_HINT}")
    have = _installed_languages(exe)
    usable = [lang for lang in wanted.split("+") if lang in have]
    if not usable:
        raise OcrUnavailable(f"tesseract has none of the languages {wanted}; {INSTALL_HINT}")
    return "+".join(usable)


def ocr_png(png: bytes, langs: str, *, dpi: int, timeout: float = 120.0) -> str:
    """The text tesseract reads in a PNG image."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise OcrUnavailable(f"tesseract not found; {INSTALL_HINT}")
    cmd = [exe, "stdin", "stdout", "-l", langs, "--dpi", str(dpi)]
    try:
        done = subprocess.run(cmd, input=png, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise OcrFailed(f"tesseract took longer than {timeout:g} s") from None
    except OSError as exc:
        raise OcrUnavailable(f"cannot run tesseract: {exc}; {INSTALL_HINT}") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OcrFailed(f"tesseract failed: {err[-1] if err else done.returncode}")
    return done.stdout.decode("utf-8", "replace")
