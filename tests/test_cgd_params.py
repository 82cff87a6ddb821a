"""cgdconfig params files: the exact text cgdconfig writes, the grammar it reads, and keys."""

import hashlib

import pytest

from tasks.cgd import params as cgd
from tasks.cgd.params import (
    GenericKeygen,
    Params,
    Pkcs5Pbkdf2Sha1,
    RandomKey,
    StoredKey,
    URandomKey,
)
from tasks.run.errors import DomusError

SPEC_KEY_B64 = "AAABAJtnmp3XZspMBAFpCYnB8Hekn0gj5cDVngslfGLSqwcy"
SPEC_KEY = bytes.fromhex("9b679a9dd766ca4c0401690989c1f077a49f4823e5c0d59e0b257c62d2ab0732")

STOREDKEY_TEXT = """\
algorithm adiantum;
iv-method encblkno1;
keylength 256;
verify_method none;
keygen storedkey key AAABAJtnmp3XZspMBAFpCYnB8Hekn0 \\
                     gj5cDVngslfGLSqwcy;
"""

PKCS5_TEXT = """\
algorithm aes-cbc;
iv-method encblkno1;
keylength 128;
verify_method none;
keygen pkcs5_pbkdf2/sha1 {
        iterations 39361;
        salt AAAAgMoHiYonye6KogdYJAobCHE=;
};
"""

SWAP_TEXT = """\
algorithm aes-xts;
iv-method encblkno1;
keylength 512;
verify_method none;
keygen randomkey;
"""

SEVERAL_TEXT = """\
algorithm blowfish-cbc;
iv-method encblkno8;
keylength 448;
verify_method ffs;
keygen storedkey key AAABwMHqlzBuV6kiaO4tJedpnBbEYc \\
                     ga8Ft2Z94JTYds72lN3iOA/Ea+O/Ov \\
                     mzSCeq0G3PHdCAkEIdXM;
keygen pkcs5_pbkdf2/sha1 {
        iterations 12;
        salt AAACAC4/znfPjEx0eKltIHwcOXFYksrIShjL7J \\
             tjT0vCKzkLSM0wpN8ufruu5lw0amYsW+LRJEEy \\
             L3pLrIIaOCxK8JE=;
};
keygen urandomkey;
"""

ARGON2_TEXT = """\
algorithm aes-xts;
iv-method encblkno1;
keylength 256;
verify_method gpt;
keygen argon2id {
        iterations 21;
        memory 1048576;
        parallelism 2;
        version 19;
        salt AAAAgLZ5QgleU2m/Ot6Ij9nwJ0E=;
        shared "backup" \\
            algorithm hkdf-hmac-sha256 \\
            subkey AAABAJtnmp3XZspMBAFpCYnB8Hekn0gj \\
                   5cDVngslfGLSqwcy;
};
"""

CANONICAL_TEXTS = [STOREDKEY_TEXT, PKCS5_TEXT, SWAP_TEXT, SEVERAL_TEXT, ARGON2_TEXT]


def test_storedkey_example_from_spec():
    assert cgd.decode_bits(SPEC_KEY_B64) == SPEC_KEY
    assert cgd.encode_bits(SPEC_KEY) == SPEC_KEY_B64
    params = cgd.parse(STOREDKEY_TEXT)
    assert params.keygens == (StoredKey(SPEC_KEY),)
    assert cgd.derive_key(params) == SPEC_KEY


def test_storedkey_is_wrapped_like_cgdconfig():
    text = cgd.format(Params("adiantum", keylength=256, keygens=[StoredKey(SPEC_KEY)]))
    assert text == STOREDKEY_TEXT


@pytest.mark.parametrize("text", CANONICAL_TEXTS)
def test_format_of_parse_gives_the_text_back(text):
    assert cgd.format(cgd.parse(text)) == text


@pytest.mark.parametrize("text", CANONICAL_TEXTS)
def test_parse_of_format_gives_the_params_back(text):
    params = cgd.parse(text)
    assert cgd.parse(cgd.format(params)) == params


def test_wrapped_lines_fill_up_to_column_50():
    # cgdconfig's print_kvpair_b64 writes characters up to column 50 (from 0), then " \\".
    wrapped = [line for line in SEVERAL_TEXT.splitlines() if line.endswith(" \\")]
    assert len(wrapped) == 4
    assert {len(line) for line in wrapped} == {51 + len(" \\")}


def test_parsed_fields():
    params = cgd.parse(SEVERAL_TEXT)
    assert (params.algorithm, params.iv_method, params.keylength, params.verify_method) == (
        "blowfish-cbc",
        "encblkno8",
        448,
        "ffs",
    )
    stored, pkcs5, random_key = params.keygens
    assert len(stored.key) == 56
    assert pkcs5 == Pkcs5Pbkdf2Sha1(12, pkcs5.salt)
    assert len(pkcs5.salt) == 64
    assert random_key == URandomKey()
    assert params.random_key
    argon2 = cgd.parse(ARGON2_TEXT).keygens[0]
    assert isinstance(argon2, GenericKeygen)
    assert argon2.method == "argon2id"
    assert dict(argon2.fields)["shared"] == (
        f'"backup" algorithm hkdf-hmac-sha256 subkey {SPEC_KEY_B64}'
    )


@pytest.mark.parametrize("algorithm", ["aes-xts", "aes-cbc", "3des-cbc", "blowfish-cbc"])
@pytest.mark.parametrize("keygen", cgd.GENERATED_KEYGENS)
def test_generated_params_round_trip(algorithm, keygen):
    params = cgd.generate(algorithm, keygen=keygen, iterations=1000)
    text = cgd.format(params)
    assert cgd.parse(text) == params
    assert cgd.format(cgd.parse(text)) == text


@pytest.mark.parametrize(
    ("algorithm", "bits"),
    [
        ("adiantum", 256),
        ("aes-cbc", 128),
        ("aes-xts", 256),
        ("3des-cbc", 192),
        ("blowfish-cbc", 128),
    ],
)
def test_defaults_by_algorithm(algorithm, bits):
    params = cgd.parse(f"algorithm {algorithm};\nkeygen randomkey;\n")
    assert (params.keylength, params.iv_method, params.verify_method) == (
        bits,
        "encblkno1",
        "none",
    )
    assert cgd.generate(algorithm).keylength == bits
    assert len(cgd.generate(algorithm).keygens[0].key) == bits // 8


def test_grammar_details():
    # Newline ends a statement like ';'; '#' comments stop at ';' or the end of the line;
    # a keygen body may also be a block; blank statements are fine.
    text = (
        "# made by hand\n"
        "algorithm aes-cbc   # the cipher\n"
        ";;\n"
        "keylength\t192\n"
        "iv-method encblkno\n"
        "keygen storedkey {\n"
        "    key AAAAwAABAgMEBQYHCAkKCwwNDg8QERITFBUWFw==;\n"
        "};\n"
    )
    params = cgd.parse(text)
    assert params == Params("aes-cbc", "encblkno", 192, "none", (StoredKey(bytes(range(24))),))


def test_continuation_joins_base64_words():
    text = (
        "algorithm aes-xts;\n"
        "keygen storedkey key AAABAJtnmp3XZs \\\n"
        "  pMBAFpCYnB8Hekn0gj5 \\\n"
        " cDVngslfGLSqwcy;\n"
    )
    assert cgd.parse(text).keygens == (StoredKey(SPEC_KEY),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("algorithm aes-xts;\nbogus 1;\nkeygen randomkey;\n", "line 2: unknown keyword 'bogus'"),
        ("algorithm twofish;\nkeygen randomkey;\n", "line 1: unknown cgd algorithm"),
        ("algorithm aes-xts;\nkeylength 128;\nkeygen randomkey;\n", "line 2: aes-xts does not"),
        ("algorithm aes-xts;\nkeylength big;\n", "line 2: keylength must be a number"),
        ("algorithm aes-xts;\niv-method ecb;\nkeygen randomkey;\n", "line 2: unknown cgd iv-m"),
        ("algorithm aes-xts;\nverify_method hope;\nkeygen randomkey;\n", "line 2: unknown verify"),
        ("algorithm aes-xts;\nalgorithm aes-cbc;\n", "line 2: algorithm given again"),
        ("keylength 256;\nkeygen randomkey;\n", "no algorithm"),
        ("algorithm aes-xts;\n", "no keygen"),
        ("algorithm aes-xts;\n\nkeygen storedkey key AA!A;\n", "line 3: mangled base64"),
        ("algorithm aes-xts;\nkeygen storedkey key AAAAgA==;\n", "line 2: base64 'AAAAgA==' cl"),
        ("algorithm aes-xts;\nkeygen storedkey key AAAAgAAAAAAAAAAAAAAAAAAAAAA=;\n", "line 2: st"),
        ("algorithm aes-xts;\nkeygen storedkey key AAAAgA== \\\nxx;\n", "line 2: mangled"),
        ("algorithm aes-xts;\nkeygen storedkey key AA\\\n BB;\n", "line 2: 'AA\\\\' ends in a"),
        ("algorithm aes-xts;\nkeygen magic;\n", "line 2: unknown keygen method"),
        ("algorithm aes-xts;\nkeygen randomkey\nkeylength 256;\n", "line 3: expected ';'"),
        ("algorithm aes-xts;\nkeygen pkcs5_pbkdf2/sha1 {\n iterations 5;\n};\n", "line 2: keygen"),
        ("algorithm aes-xts;\nkeygen pkcs5_pbkdf2/sha1 {\n iterations 5;\n", "file ends"),
        ("algorithm aes-xts;\nkeygen storedkey {\n colour blue;\n};\n", "line 3: unknown keygen f"),
        ('algorithm "aes-xts;\n', "line 1: unexpected '\"'"),
        ("xor_key AAAA;\n", "line 1: xor_key is from the pre-2003"),
    ],
)
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(DomusError) as caught:
        cgd.parse(text, source="disk.params")
    assert str(caught.value).startswith("disk.params")
    assert message in caught.value.message


def test_derive_key_pkcs5_matches_hashlib():
    params = cgd.parse(PKCS5_TEXT)
    salt = params.keygens[0].salt
    expected = hashlib.pbkdf2_hmac("sha1", b"correct horse", salt, 39361, 16)
    assert cgd.derive_key(params, b"correct horse") == expected
    with pytest.raises(DomusError, match="needs a passphrase"):
        cgd.derive_key(params)


def test_derive_key_xors_keygens():
    salt = bytes(range(16))
    params = Params(
        "aes-cbc",
        keylength=256,
        keygens=[StoredKey(SPEC_KEY), Pkcs5Pbkdf2Sha1(3, salt)],
    )
    stretched = hashlib.pbkdf2_hmac("sha1", b"pw", salt, 3, 32)
    expected = bytes(a ^ b for a, b in zip(SPEC_KEY, stretched, strict=True))
    assert cgd.derive_key(params, b"pw") == expected


def test_random_keys_are_fresh():
    params = cgd.parse(SWAP_TEXT)
    first, second = cgd.derive_key(params), cgd.derive_key(params)
    assert len(first) == 64
    assert first != second
    assert params.random_key
    assert cgd.parse(SWAP_TEXT.replace("randomkey", "urandomkey")).keygens == (URandomKey(),)
    assert Params("aes-xts", keygens=[RandomKey()]).random_key


def test_unsupported_keygen_cannot_derive():
    with pytest.raises(DomusError, match="keygen argon2id is not supported"):
        cgd.derive_key(cgd.parse(ARGON2_TEXT), b"pw")


def test_generate_gives_fresh_keys():
    first, second = cgd.generate("aes-xts", 512), cgd.generate("aes-xts", 512)
    assert first.keygens != second.keygens
    assert len(cgd.derive_key(first)) == 64
    salted = cgd.generate("aes-cbc", keygen="pkcs5_pbkdf2/sha1", iterations=7)
    assert salted.keygens[0].iterations == 7
    assert len(salted.keygens[0].salt) == 16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "aes-xts", "keylength": 384}, "does not take a 384-bit key"),
        ({"algorithm": "rot13"}, "unknown cgd algorithm"),
        ({"algorithm": "aes-xts", "keygen": "argon2id"}, "cannot generate keygen"),
        ({"algorithm": "aes-xts", "verify_method": "maybe"}, "unknown verify_method"),
    ],
)
def test_generate_refuses_bad_settings(kwargs, message):
    with pytest.raises(DomusError, match=message):
        cgd.generate(**kwargs)


def test_params_validate_themselves():
    with pytest.raises(DomusError, match="at least one keygen"):
        Params("aes-xts")
    with pytest.raises(DomusError, match="storedkey holds a 128-bit key"):
        Params("aes-xts", keygens=[StoredKey(bytes(16))])
    params = Params("aes-cbc", keygens=[RandomKey()])
    assert params.keylength == 128
    assert isinstance(params.keygens, tuple)
