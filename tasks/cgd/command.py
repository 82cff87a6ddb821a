"""`./domus cgd encrypt|decrypt|genparams`: what each does with its parsed arguments.

Output goes to a temporary file beside OUT that is renamed into place on success, so an
error leaves OUT as it was.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from tasks.cgd import params as cgd_params
from tasks.cgd.stream import atomic_output, decrypt_file, encrypt_file
from tasks.run.errors import DomusError


def encrypt(args: argparse.Namespace) -> None:
    params = _read_params(args.params)
    passphrase = _passphrase(args, params, confirm=True)
    encrypt_file(params, args.input, args.output, passphrase=passphrase, jobs=args.jobs)


def decrypt(args: argparse.Namespace) -> None:
    params = _read_params(args.params)
    passphrase = _passphrase(args, params, confirm=False)
    decrypt_file(params, args.input, args.output, passphrase=passphrase, jobs=args.jobs)


def genparams(args: argparse.Namespace) -> None:
    out: Path = args.output
    if out.exists():
        raise DomusError(
            f"{out} exists; refusing to overwrite a params file (it may hold a disk's only key)",
            hint="remove it first or choose another name",
        )
    params = cgd_params.generate(
        args.algorithm,
        args.keylength,
        args.iv_method,
        args.verify_method,
        args.keygen,
        iterations=args.iterations,
    )
    with atomic_output(out) as f:
        f.write(cgd_params.format(params).encode("ascii"))


def _read_params(path: Path) -> cgd_params.Params:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DomusError(f"cannot read params file {path}: {e}") from None
    params = cgd_params.parse(text, source=str(path))
    if params.random_key:
        raise DomusError(
            f"{path} uses randomkey/urandomkey: that key is fresh each time and never stored, "
            "so no image can be encrypted for it or decrypted with it",
            hint="use params with storedkey or pkcs5_pbkdf2/sha1 (./domus cgd genparams)",
        )
    return params


def _passphrase(
    args: argparse.Namespace, params: cgd_params.Params, *, confirm: bool
) -> bytes | None:
    if not any(isinstance(k, cgd_params.Pkcs5Pbkdf2Sha1) for k in params.keygens):
        return None
    if args.passphrase_file is not None:
        try:
            data: bytes = args.passphrase_file.read_bytes()
        except OSError as e:
            raise DomusError(f"cannot read passphrase file {args.passphrase_file}: {e}") from None
        return data.removesuffix(b"\n").removesuffix(b"\r")
    if not sys.stdin.isatty():
        raise DomusError(
            f"{args.params} needs a passphrase and there is no terminal to ask on",
            hint="pass --passphrase-file FILE",
        )
    passphrase = getpass.getpass(f"Passphrase for {args.params}: ")
    if confirm and getpass.getpass("Re-enter passphrase: ") != passphrase:
        raise DomusError("the passphrases differ", hint="run again and type the same twice")
    return passphrase.encode()
