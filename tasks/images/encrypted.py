"""An image sealed with cgd: the file system is written, then encrypted sector by sector.

The plain image exists only in a private directory beside the partial one while it is
encrypted (tasks/images/plaintext.py) and is removed afterwards, whatever happens. An
encrypted image is not sparse: cgd turns zeros into noise, as on a real disk.
"""

from __future__ import annotations

from pathlib import Path

from tasks.cgd.params import Params
from tasks.cgd.stream import encrypt_file
from tasks.images.plaintext import private_dir
from tasks.images.tree import Tree
from tasks.images.writers import write_image
from tasks.run.log import timed


def write_encrypted_image(
    tree: Tree,
    fs: str,
    size: int,
    dest: Path,
    params: Params,
    passphrase: bytes | None,
    *,
    room: bool = False,
    density: int | None = None,
) -> None:
    with private_dir(dest) as private:
        plain = private / "plain.img"
        write_image(tree, fs, size, plain, room=room, density=density)
        with timed(f"{dest.name}: cgd {params.algorithm} {params.bits}"):
            encrypt_file(params, plain, dest, passphrase=passphrase)
