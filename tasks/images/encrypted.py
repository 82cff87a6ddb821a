"""An image sealed with cgd: the file system is written, then encrypted sector by sector.

The plain image exists only beside the partial one while it is encrypted and is removed
afterwards, whatever happens. An encrypted image is not sparse: cgd turns zeros into
noise, as on a real disk.
"""

from __future__ import annotations

from pathlib import Path

from tasks.cgd.params import Params
from tasks.cgd.stream import encrypt_file
from tasks.images import write_image
from tasks.log import timed
from tasks.tree import Tree


def write_encrypted_image(
    tree: Tree, fs: str, size: int, dest: Path, params: Params, passphrase: bytes | None
) -> None:
    plain = dest.with_name(dest.name + ".plain")
    try:
        write_image(tree, fs, size, plain)
        with timed(f"{dest.name}: cgd {params.algorithm} {params.bits}"):
            encrypt_file(params, plain, dest, passphrase=passphrase)
    finally:
        plain.unlink(missing_ok=True)
