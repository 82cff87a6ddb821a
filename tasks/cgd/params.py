"""cgdconfig(8) parameters files: read, write and turn into a key.

A params file is what NetBSD needs, next to the encrypted image, to configure the cgd, so
`format` writes exactly what `cgdconfig -g` writes (same order, same 8-space indent, same
base64 wrapping at column 50) and `parse` follows cgdconfig's grammar: a statement ends at
`;` or at a newline not escaped by a backslash, `#` comments run to the end of the line or
the next `;`, and a keygen body is either one inline field or a `{ ... }` block.

Keygens other than storedkey, pkcs5_pbkdf2/sha1, randomkey and urandomkey (argon2id,
shell_cmd, the old pkcs5_pbkdf2, shared keys) are kept as GenericKeygen so they can be
written back, but `derive_key` cannot use them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from tasks.cgd.ciphers import algorithm_info, check_iv_method, check_keylength
from tasks.run.errors import DomusError

VERIFY_METHODS = ("none", "disklabel", "ffs", "re-enter", "mbr", "gpt")
DEFAULT_SALT_BITS = 128  # what cgdconfig -g uses
DEFAULT_PBKDF2_ITERATIONS = 1_000_000
GENERATED_KEYGENS = ("storedkey", "randomkey", "urandomkey", "pkcs5_pbkdf2/sha1")

_T = TypeVar("_T")

_WRAP_COL = 50  # cgdconfig's print_kvpair_b64 starts a new line past this column
_TAB = " " * 8
_INT_FIELDS = frozenset({"iterations", "memory", "parallelism", "version"})
_BITS_FIELDS = frozenset({"key", "salt"})
_KEYGEN_EOL_HINT = "cgdconfig needs a keygen line to end with ';' and a new line"
_DIGITS = re.compile(r"[0-9]+")
_GENERIC_METHODS = frozenset({"argon2id", "shell_cmd", "pkcs5_pbkdf2", "pkcs5_pbkdf2/sha1"})
_DEPRECATED = frozenset({"keygen_method", "keygen_salt", "keygen_iterations", "xor_key"})


@dataclass(frozen=True)
class StoredKey:
    """`keygen storedkey key ...;`: the key itself, for unattended configuration."""

    key: bytes = field(repr=False)


@dataclass(frozen=True)
class Pkcs5Pbkdf2Sha1:
    """`keygen pkcs5_pbkdf2/sha1 { iterations N; salt ...; };`: key from a passphrase."""

    iterations: int
    salt: bytes


@dataclass(frozen=True)
class RandomKey:
    """`keygen randomkey;`: a fresh key from /dev/random each time (swap)."""


@dataclass(frozen=True)
class URandomKey:
    """`keygen urandomkey;`: a fresh key from /dev/urandom each time (swap)."""


@dataclass(frozen=True)
class GenericKeygen:
    """A keygen domus cannot derive keys from, kept field by field to be written back.

    Values are text as cgdconfig reads them: digits for counts, the joined base64 for
    `key`/`salt`, the unquoted string for `cmd`, and `"id" algorithm A subkey B64` for
    `shared`.
    """

    method: str
    fields: tuple[tuple[str, str], ...] = ()


Keygen = StoredKey | Pkcs5Pbkdf2Sha1 | RandomKey | URandomKey | GenericKeygen


@dataclass(frozen=True)
class Params:
    """One params file. keylength is in bits; None means the algorithm's default."""

    algorithm: str
    iv_method: str = "encblkno1"
    keylength: int | None = None
    verify_method: str = "none"
    keygens: tuple[Keygen, ...] = ()

    def __post_init__(self) -> None:
        info = algorithm_info(self.algorithm)
        if self.keylength is None:
            object.__setattr__(self, "keylength", info.default_keylength)
        object.__setattr__(self, "keygens", tuple(self.keygens))
        check_iv_method(self.iv_method)
        check_keylength(self.algorithm, self.bits)
        check_verify_method(self.verify_method)
        if not self.keygens:
            raise DomusError(
                "cgd params need at least one keygen", hint="e.g. keygen storedkey key ...;"
            )
        for keygen in self.keygens:
            if isinstance(keygen, StoredKey) and len(keygen.key) * 8 != self.bits:
                raise DomusError(
                    f"storedkey holds a {len(keygen.key) * 8}-bit key but keylength is {self.bits}",
                    hint="the stored key must be exactly keylength bits",
                )

    @property
    def bits(self) -> int:
        """The key length in bits (never None once constructed)."""
        assert self.keylength is not None
        return self.keylength

    @property
    def random_key(self) -> bool:
        """True when part of the key is drawn afresh each time, so it can't be recovered."""
        return any(isinstance(k, RandomKey | URandomKey) for k in self.keygens)


def check_verify_method(verify_method: str) -> None:
    """Refuse verify methods cgdconfig does not know."""
    if verify_method not in VERIFY_METHODS:
        raise DomusError(
            f"unknown verify_method {verify_method!r}",
            hint="use one of " + ", ".join(VERIFY_METHODS),
        )


# --- bits: cgdconfig's base64 of a 32-bit big-endian bit count followed by the bytes


def encode_bits(data: bytes) -> str:
    """cgdconfig's encoding of a key or salt."""
    return base64.b64encode((len(data) * 8).to_bytes(4, "big") + data).decode("ascii")


def decode_bits(text: str) -> bytes:
    """Inverse of encode_bits; bytes past the bit count are ignored, as cgdconfig does."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise DomusError(f"mangled base64 {text!r}: {e}") from None
    if len(raw) < 4:
        raise DomusError(f"base64 {text!r} is too short to hold a bit count")
    bits = int.from_bytes(raw[:4], "big")
    if bits % 8:
        raise DomusError(f"base64 {text!r} holds {bits} bits, not whole bytes")
    if bits > (len(raw) - 4) * 8:
        raise DomusError(f"base64 {text!r} claims {bits} bits but holds {(len(raw) - 4) * 8}")
    return raw[4 : 4 + bits // 8]


# --- writing


def format(params: Params) -> str:
    """The params file text, byte for byte as cgdconfig writes it."""
    lines = [
        f"algorithm {params.algorithm};",
        f"iv-method {params.iv_method};",
        f"keylength {params.bits};",
        f"verify_method {params.verify_method};",
    ]
    lines.extend(_format_keygen(keygen) for keygen in params.keygens)
    return "\n".join(lines) + "\n"


def _format_keygen(keygen: Keygen) -> str:
    if isinstance(keygen, StoredKey):
        prefix = "keygen storedkey "
        return prefix + _wrapped("", "key", encode_bits(keygen.key), len(prefix))
    if isinstance(keygen, RandomKey):
        return "keygen randomkey;"
    if isinstance(keygen, URandomKey):
        return "keygen urandomkey;"
    if isinstance(keygen, Pkcs5Pbkdf2Sha1):
        fields: Iterable[tuple[str, str]] = (
            ("iterations", str(keygen.iterations)),
            ("salt", encode_bits(keygen.salt)),
        )
        method = "pkcs5_pbkdf2/sha1"
    else:
        fields, method = keygen.fields, keygen.method
    body = "".join(_format_field(name, value) + "\n" for name, value in fields)
    return f"keygen {method} {{\n{body}}};"


def _format_field(name: str, value: str) -> str:
    if name in _BITS_FIELDS:
        return _wrapped(_TAB, name, value, 0)
    if name == "cmd":
        return f'{_TAB}cmd "{value}";'
    if name == "shared":
        ident, _, rest = value.partition(" algorithm ")
        algorithm, _, subkey = rest.partition(" subkey ")
        inner = _TAB + " " * 4
        return f"{_TAB}shared {ident} \\\n{inner}algorithm {algorithm} \\\n" + _wrapped(
            inner, "subkey", subkey, 0
        )
    return f"{_TAB}{name} {value};"


def _wrapped(indent: str, name: str, value: str, column: int) -> str:
    """`name value;` with value broken like cgdconfig: ` \\` then aligned under its start."""
    start = column + len(indent) + len(name) + 1
    width = max(1, _WRAP_COL - start + 1)
    chunks = [value[i : i + width] for i in range(0, len(value), width)] or [""]
    return f"{indent}{name} " + (" \\\n" + " " * start).join(chunks) + ";"


# --- reading


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "quoted", "eol", "{", "}"
    text: str
    line: int


_TOKEN = re.compile(
    r"""(?P<continuation>\\\n)
      | (?P<space>[ \t]+)
      | (?P<comment>\#[^;\n]*)
      | (?P<eol>[;\n])
      | (?P<brace>[{}])
      | "(?P<quoted>[^"]*)"
      | (?P<word>[^ }{\t\n;"]+)
      | (?P<bad>.)""",
    re.VERBOSE | re.DOTALL,
)


class _Reader:
    """Tokens of a params file with one-token lookahead; errors name the line."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self._tokens = list(self._lex(text))
        self._pos = 0

    def _lex(self, text: str) -> Iterator[_Token]:
        line = 1
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup or "bad"
            value = match.group(kind)
            if kind == "word" and value.endswith("\\") and text.startswith("\n", match.end()):
                raise self.error(
                    line,
                    f"{value!r} ends in a backslash that cgdconfig reads as part of the word",
                    hint="put a space before a continuation backslash",
                )
            if kind == "eol":
                yield _Token("eol", value, line)
            elif kind == "brace":
                yield _Token(value, value, line)
            elif kind in ("quoted", "word"):
                yield _Token(kind, value, line)
            elif kind == "bad":
                raise self.error(line, f"unexpected {value!r}")
            line += match.group(0).count("\n")

    def error(self, line: int, message: str, hint: str | None = None) -> DomusError:
        return DomusError(f"{self.source} line {line}: {message}", hint=hint)

    def peek(self) -> _Token | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def next(self) -> _Token | None:
        token = self.peek()
        if token is not None:
            self._pos += 1
        return token

    def last_line(self) -> int:
        return self._tokens[-1].line if self._tokens else 1

    def value(self, what: str) -> _Token:
        token = self.next()
        if token is None or token.kind not in ("word", "quoted"):
            raise self._unexpected(token, what)
        return token

    def integer(self, what: str) -> int:
        token = self.value(what)
        if token.kind != "word" or not _DIGITS.fullmatch(token.text):
            raise self.error(token.line, f"{what} must be a number, not {token.text!r}")
        return int(token.text)

    def bits(self, what: str) -> tuple[str, int]:
        """The base64 words up to the end of the statement, joined as cgdconfig does."""
        first = self.value(what)
        words = [first.text]
        while (token := self.peek()) is not None and token.kind in ("word", "quoted"):
            words.append(token.text)
            self.next()
        return "".join(words), first.line

    def end_of_statement(self, what: str, hint: str | None = None) -> None:
        token = self.next()
        if token is not None and token.kind != "eol":
            error = self._unexpected(token, f"';' or a new line after {what}")
            error.hint = hint
            raise error

    def expect(self, kind: str, what: str) -> _Token:
        token = self.next()
        if token is None or token.kind != kind:
            raise self._unexpected(token, what)
        return token

    def _unexpected(self, token: _Token | None, what: str) -> DomusError:
        if token is None:
            return self.error(self.last_line(), f"file ends where {what} was expected")
        found = "end of statement" if token.kind == "eol" else repr(token.text)
        return self.error(token.line, f"expected {what}, found {found}")


def parse(text: str, *, source: str = "params file") -> Params:
    """Read params file text; `source` names the file in error messages."""
    reader = _Reader(text, source)
    scalars: dict[str, tuple[str, int]] = {}
    keygens: list[tuple[Keygen, int]] = []
    while (token := reader.next()) is not None:
        if token.kind == "eol":
            continue
        keyword = token.text
        if token.kind != "word":
            raise reader.error(token.line, f"expected a keyword, found {keyword!r}")
        if keyword == "keygen":
            keygens.append((_parse_keygen(reader, token.line), token.line))
        elif keyword in ("algorithm", "iv-method", "verify_method", "keylength"):
            if keyword in scalars:
                raise reader.error(
                    token.line, f"{keyword} given again (first on line {scalars[keyword][1]})"
                )
            if keyword == "keylength":
                value = str(reader.integer("keylength"))
            else:
                value = reader.value(f"a value for {keyword}").text
            reader.end_of_statement(keyword)
            scalars[keyword] = (value, token.line)
        elif keyword in _DEPRECATED:
            raise reader.error(
                token.line,
                f"{keyword} is from the pre-2003 params format, which domus does not read",
                hint="convert the file on NetBSD with cgdconfig -G",
            )
        else:
            hint = "the file has DOS line endings; use plain newlines" if "\r" in keyword else None
            raise reader.error(token.line, f"unknown keyword {keyword!r}", hint=hint)
    return _build(reader, scalars, keygens)


def _build(
    reader: _Reader, scalars: dict[str, tuple[str, int]], keygens: list[tuple[Keygen, int]]
) -> Params:
    if "algorithm" not in scalars:
        raise reader.error(reader.last_line(), "no algorithm given", hint="add: algorithm aes-xts;")
    values = {name: value for name, (value, _) in scalars.items()}
    for name, check in (
        ("algorithm", algorithm_info),
        ("iv-method", check_iv_method),
        ("verify_method", check_verify_method),
    ):
        if name in scalars:
            _at_line(reader, scalars[name][1], check, values[name])
    keylength = int(values["keylength"]) if "keylength" in values else None
    if keylength is not None:
        _at_line(reader, scalars["keylength"][1], check_keylength, values["algorithm"], keylength)
    if not keygens:
        raise reader.error(reader.last_line(), "no keygen given", hint="add e.g. keygen storedkey")
    bits = algorithm_info(values["algorithm"]).default_keylength if keylength is None else keylength
    for keygen, line in keygens:
        if isinstance(keygen, StoredKey) and len(keygen.key) * 8 != bits:
            raise reader.error(
                line,
                f"storedkey holds a {len(keygen.key) * 8}-bit key but keylength is {bits}",
                hint="the stored key must be exactly keylength bits",
            )
    return Params(
        algorithm=values["algorithm"],
        iv_method=values.get("iv-method", "encblkno1"),
        keylength=bits,
        verify_method=values.get("verify_method", "none"),
        keygens=tuple(keygen for keygen, _ in keygens),
    )


def _at_line(reader: _Reader, line: int, check: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run `check`, prefixing any DomusError with the file and line."""
    try:
        return check(*args, **kwargs)
    except DomusError as e:
        raise reader.error(line, e.message, hint=e.hint) from None


def _parse_keygen(reader: _Reader, line: int) -> Keygen:
    method = reader.value("a keygen method").text
    fields: list[tuple[str, str, int]] = []
    token = reader.peek()
    if token is not None and token.kind == "{":
        reader.next()
        while (token := reader.peek()) is not None and token.kind != "}":
            if token.kind == "eol":
                reader.next()
            else:
                fields.append(_parse_field(reader))
        reader.expect("}", f"'}}' closing keygen {method}")
        reader.end_of_statement(f"keygen {method} {{...}}")
    elif token is not None and token.kind != "eol":
        fields.append(_parse_field(reader))
        reader.end_of_statement(f"keygen {method}", _KEYGEN_EOL_HINT)
    else:
        reader.end_of_statement(f"keygen {method}")
        reader.end_of_statement(f"keygen {method}", _KEYGEN_EOL_HINT)
    return _make_keygen(reader, method, fields, line)


def _parse_field(reader: _Reader) -> tuple[str, str, int]:
    """One `name value;` inside a keygen, value normalised as GenericKeygen stores it."""
    name_token = reader.value("a keygen field")
    name, line = name_token.text, name_token.line
    if name in _INT_FIELDS:
        value = str(reader.integer(name))
    elif name in _BITS_FIELDS:
        value, _ = reader.bits(f"base64 for {name}")
    elif name == "cmd":
        value = reader.value("a command for cmd").text
    elif name == "shared":
        ident = reader.value("a name for shared")
        if reader.value("'algorithm'").text != "algorithm":
            raise reader.error(line, 'shared needs: shared "NAME" algorithm ALG subkey B64')
        algorithm = reader.value("a shared key algorithm").text
        if reader.value("'subkey'").text != "subkey":
            raise reader.error(line, 'shared needs: shared "NAME" algorithm ALG subkey B64')
        subkey, _ = reader.bits("base64 for subkey")
        value = f'"{ident.text}" algorithm {algorithm} subkey {subkey}'
    else:
        raise reader.error(line, f"unknown keygen field {name!r}")
    reader.end_of_statement(name)
    return name, value, line


def _make_keygen(
    reader: _Reader, method: str, fields: list[tuple[str, str, int]], line: int
) -> Keygen:
    names = [name for name, _, _ in fields]
    values = {name: (value, at) for name, value, at in fields}
    if len(set(names)) != len(names):
        raise reader.error(line, f"keygen {method} repeats a field: {', '.join(names)}")
    if method in ("randomkey", "urandomkey"):
        if fields:
            raise reader.error(line, f"keygen {method} takes no fields")
        return RandomKey() if method == "randomkey" else URandomKey()
    if method == "storedkey":
        if names != ["key"]:
            raise reader.error(line, "keygen storedkey needs exactly one field: key")
        value, at = values["key"]
        return StoredKey(_at_line(reader, at, decode_bits, value))
    if method == "pkcs5_pbkdf2/sha1" and sorted(names) == ["iterations", "salt"]:
        salt, at = values["salt"]
        iterations = int(values["iterations"][0])
        if iterations < 1:
            raise reader.error(values["iterations"][1], "iterations must be at least 1")
        return Pkcs5Pbkdf2Sha1(iterations, _at_line(reader, at, decode_bits, salt))
    if method == "pkcs5_pbkdf2/sha1" and "shared" not in names:
        raise reader.error(line, "keygen pkcs5_pbkdf2/sha1 needs iterations and salt")
    if method not in _GENERIC_METHODS:
        raise reader.error(
            line,
            f"unknown keygen method {method!r}",
            hint="cgdconfig knows storedkey, pkcs5_pbkdf2/sha1, argon2id, randomkey, "
            "urandomkey, shell_cmd",
        )
    for name, value, at in fields:
        if name in _BITS_FIELDS:
            _at_line(reader, at, decode_bits, value)
    return GenericKeygen(method, tuple((name, value) for name, value, _ in fields))


# --- keys


def derive_key(params: Params, passphrase: bytes | None = None) -> bytes:
    """The raw cgd key: each keygen's key, XORed together as cgdconfig does."""
    size = params.bits // 8
    key = 0
    for keygen in params.keygens:
        key ^= int.from_bytes(_keygen_key(keygen, size, passphrase), "big")
    return key.to_bytes(size, "big")


def _keygen_key(keygen: Keygen, size: int, passphrase: bytes | None) -> bytes:
    if isinstance(keygen, StoredKey):
        return keygen.key
    if isinstance(keygen, RandomKey | URandomKey):
        return os.urandom(size)
    if isinstance(keygen, Pkcs5Pbkdf2Sha1):
        if passphrase is None:
            raise DomusError(
                "keygen pkcs5_pbkdf2/sha1 needs a passphrase",
                hint="pass --passphrase-file FILE or run on a terminal to be asked",
            )
        kdf = PBKDF2HMAC(
            algorithm=hashes.SHA1(), length=size, salt=keygen.salt, iterations=keygen.iterations
        )
        return kdf.derive(passphrase)
    raise DomusError(
        f"keygen {keygen.method} is not supported by domus cgd",
        hint="use storedkey or pkcs5_pbkdf2/sha1 params (./domus cgd genparams)",
    )


def generate(
    algorithm: str,
    keylength: int | None = None,
    iv_method: str = "encblkno1",
    verify_method: str = "none",
    keygen: str = "storedkey",
    *,
    iterations: int = DEFAULT_PBKDF2_ITERATIONS,
) -> Params:
    """New params with a fresh random key (storedkey) or salt (pkcs5_pbkdf2/sha1)."""
    bits = algorithm_info(algorithm).default_keylength if keylength is None else keylength
    check_keylength(algorithm, bits)
    new: Keygen
    if keygen == "storedkey":
        new = StoredKey(os.urandom(bits // 8))
    elif keygen == "randomkey":
        new = RandomKey()
    elif keygen == "urandomkey":
        new = URandomKey()
    elif keygen == "pkcs5_pbkdf2/sha1":
        new = Pkcs5Pbkdf2Sha1(iterations, os.urandom(DEFAULT_SALT_BITS // 8))
    else:
        raise DomusError(
            f"cannot generate keygen {keygen!r}", hint="use one of " + ", ".join(GENERATED_KEYGENS)
        )
    return Params(algorithm, iv_method, bits, verify_method, (new,))


__all__ = [
    "GENERATED_KEYGENS",
    "VERIFY_METHODS",
    "GenericKeygen",
    "Keygen",
    "Params",
    "Pkcs5Pbkdf2Sha1",
    "RandomKey",
    "StoredKey",
    "URandomKey",
    "decode_bits",
    "derive_key",
    "encode_bits",
    "format",
    "generate",
    "parse",
]
