"""Keys of encrypted local images, in the key directory and nowhere else.

Made when missing and kept mode 0600 in a directory of mode 0700. A key never goes into
an image, a log or an xl config; a key file that group or others can read is refused, as
ssh refuses a private key anyone can read.

- `dom0`: `<name>-local.params` is a cgdconfig params file with the key in it (storedkey);
  the dom0 opens the image with it.
- `domu`: `<name>-local.params` holds only the salt and iterations (pkcs5_pbkdf2/sha1)
  and goes into root.img; `<name>-local.passphrase` is what the operator types at the
  domU's console. Both params use verify_method ffs, so a wrong key fails loudly.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from tasks.cgd.keyfiles import params_path, passphrase_path
from tasks.cgd.params import Params, format, generate, parse
from tasks.run.errors import DomusError
from tasks.site import DomU

PASSPHRASE_BYTES = 24


def check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise DomusError(
            f"{path} can be read by group or others (mode {mode:04o}); a key must be private",
            hint=f"chmod {'700' if path.is_dir() else '600'} {path}, and check who has read it",
        )


def ensure_key_dir(keys: Path) -> None:
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private(keys)


def _write_private(path: Path, text: str) -> None:
    """Create `path` with mode 0600 from the start; never overwrite an existing key."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(temporary, path)  # fails if another job made the key meanwhile
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def ensure_local_key(keys: Path, domu: DomU) -> None:
    """Make the key material of an encrypted local.img if it is missing; check it if not."""
    ensure_key_dir(keys)
    params = params_path(keys, domu.name)
    keygen = "storedkey" if domu.local_opened_by_dom0 else "pkcs5_pbkdf2/sha1"
    passphrase = passphrase_path(keys, domu.name)
    if domu.opens_local_itself and not passphrase.exists():
        _write_private(passphrase, secrets.token_urlsafe(PASSPHRASE_BYTES) + "\n")
    if not params.exists():
        # cgdconfig can check a key against an FFS superblock only; for ext2fs, domus's own
        # decrypt checks the ext2 magic instead
        verify = "ffs" if domu.local.fs == "ffs" else "none"
        new = generate(domu.local.cipher, domu.local.keylength, verify_method=verify, keygen=keygen)
        _write_private(params, format(new))
    for path in (params, passphrase):
        if path.exists():
            check_private(path)


def local_params(keys: Path, domu: DomU) -> tuple[Params, bytes | None]:
    """The params of an encrypted local.img and, for `domu`, the passphrase they need."""
    path = params_path(keys, domu.name)
    check_private(path)
    params = parse(path.read_text(), source=str(path))
    if (params.algorithm, params.bits) != (domu.local.cipher, domu.local.keylength):
        raise DomusError(
            f"{path} is for {params.algorithm} {params.bits}, the site file asks for "
            f"{domu.local.cipher} {domu.local.keylength}",
            hint="a key belongs to the image it encrypts: set the site file back, or "
            f"move the key away and `./domus reprovision {domu.name}` (the data is lost)",
        )
    if domu.local_opened_by_dom0:
        return params, None
    passphrase = passphrase_path(keys, domu.name)
    check_private(passphrase)
    return params, passphrase.read_text().rstrip("\n").encode()
