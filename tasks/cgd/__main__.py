"""Command line: encrypt or decrypt a disk image as NetBSD cgd(4) would, or make params.

    python -m tasks.cgd encrypt PARAMS IN OUT
    python -m tasks.cgd decrypt PARAMS IN OUT
    python -m tasks.cgd genparams [--algorithm aes-xts] [--keylength 256] [--keygen storedkey] OUT

Errors print `domus cgd: <message>` and a hint to stderr and exit 2, and leave OUT as it
was: output goes to a temporary file beside OUT that is renamed into place on success.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from tasks.cgd import params as cgd_params
from tasks.cgd.ciphers import ALGORITHMS, IV_METHODS
from tasks.cgd.stream import atomic_output, decrypt_file, encrypt_file
from tasks.errors import DomusError

EXIT_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except DomusError as e:
        _complain(e.message, e.hint)
        return EXIT_ERROR
    except OSError as e:
        _complain(str(e), None)
        return EXIT_ERROR
    except KeyboardInterrupt:
        _complain("interrupted; nothing was written", None)
        return 130
    return 0


def _complain(message: str, hint: str | None) -> None:
    print(f"domus cgd: {message}", file=sys.stderr)
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.cgd", description="NetBSD cgd(4) disk image encryption"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for name, run, summary in (
        ("encrypt", _encrypt, "encrypt a plain image into what cgd stores on disk"),
        ("decrypt", _decrypt, "decrypt a cgd disk image into the plain image"),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("params", type=Path, help="cgdconfig params file")
        command.add_argument("input", type=Path, metavar="IN")
        command.add_argument("output", type=Path, metavar="OUT")
        command.add_argument(
            "--passphrase-file",
            type=Path,
            metavar="FILE",
            help="passphrase for pkcs5_pbkdf2/sha1 keygens (one trailing newline is dropped); "
            "without it, asked on the terminal",
        )
        command.add_argument(
            "--jobs", type=int, metavar="N", help="worker processes (default: usable CPUs)"
        )
        command.set_defaults(run=run)
    generate = commands.add_parser(
        "genparams", help="write a new params file (mode 0600) with a fresh key or salt"
    )
    generate.add_argument("--algorithm", default="aes-xts", choices=list(ALGORITHMS))
    generate.add_argument("--keylength", type=int, help="bits (default: the algorithm's)")
    generate.add_argument("--iv-method", default="encblkno1", choices=list(IV_METHODS))
    generate.add_argument(
        "--verify-method", default="none", choices=list(cgd_params.VERIFY_METHODS)
    )
    generate.add_argument(
        "--keygen", default="storedkey", choices=list(cgd_params.GENERATED_KEYGENS)
    )
    generate.add_argument(
        "--iterations",
        type=int,
        default=cgd_params.DEFAULT_PBKDF2_ITERATIONS,
        help="PBKDF2 iterations for pkcs5_pbkdf2/sha1",
    )
    generate.add_argument("output", type=Path, metavar="OUT")
    generate.set_defaults(run=_genparams)
    return parser


def _encrypt(args: argparse.Namespace) -> None:
    params = _read_params(args.params)
    passphrase = _passphrase(args, params, confirm=True)
    encrypt_file(params, args.input, args.output, passphrase=passphrase, jobs=args.jobs)


def _decrypt(args: argparse.Namespace) -> None:
    params = _read_params(args.params)
    passphrase = _passphrase(args, params, confirm=False)
    decrypt_file(params, args.input, args.output, passphrase=passphrase, jobs=args.jobs)


def _genparams(args: argparse.Namespace) -> None:
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
            hint="use params with storedkey or pkcs5_pbkdf2/sha1 (python -m tasks.cgd genparams)",
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


if __name__ == "__main__":
    sys.exit(main())
