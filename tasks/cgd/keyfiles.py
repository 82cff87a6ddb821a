"""Names of the files in the key directory (cheap to import: no cryptography)."""

from __future__ import annotations

from pathlib import Path


def params_path(keys: Path, name: str) -> Path:
    return keys / f"{name}-local.params"


def passphrase_path(keys: Path, name: str) -> Path:
    return keys / f"{name}-local.passphrase"
