"""`python -m tasks.cgd` and the file layer under it: round trips, refusals, and that a
failed run never leaves OUT (or a temporary file) behind."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.cgd import params as cgd
from tasks.cgd.ciphers import SectorCipher, make_cipher
from tasks.cgd.stream import decrypt_file, encrypt_file
from tasks.run.errors import DomusError

REPO = Path(__file__).resolve().parents[1]
MAKEFS = shutil.which("makefs") or next(
    (p for p in ("/usr/sbin/makefs", "/usr/bin/makefs") if os.access(p, os.X_OK)), None
)


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tasks.cgd", *map(str, args)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_ok(*args: object) -> None:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def assert_refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 1, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("domus: "), result.stderr
    for phrase in phrases:
        assert phrase in result.stderr


def write_params(path: Path, params: cgd.Params) -> Path:
    path.write_text(cgd.format(params))
    return path


def ffs_image(tmp_path: Path) -> bytes:
    if MAKEFS is None:
        pytest.skip("makefs is not installed")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "motd").write_text("hello from a cgd test\n")
    image = tmp_path / "ffs.img"
    subprocess.run([MAKEFS, "-t", "ffs", "-s", "2m", image, tree], check=True, capture_output=True)
    return image.read_bytes()


def test_genparams_writes_a_private_params_file(tmp_path):
    out = tmp_path / "disk.params"
    run_ok(
        "genparams", "--algorithm", "aes-xts", "--keylength", "256", "--keygen", "storedkey", out
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    params = cgd.parse(out.read_text())
    assert (params.algorithm, params.keylength, params.iv_method) == ("aes-xts", 256, "encblkno1")
    assert isinstance(params.keygens[0], cgd.StoredKey)
    assert cgd.format(params) == out.read_text()

    before = out.read_text()
    assert_refused(run_cli("genparams", out), "exists")
    assert out.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.params"]


@pytest.mark.parametrize(
    ("algorithm", "iv_method"),
    [
        ("aes-xts", "encblkno1"),
        ("aes-cbc", "encblkno8"),
        ("3des-cbc", "encblkno1"),
        ("blowfish-cbc", "encblkno1"),
    ],
)
def test_encrypt_then_decrypt_gives_the_image_back(tmp_path, algorithm, iv_method):
    params_file = tmp_path / "p.params"
    run_ok("genparams", "--algorithm", algorithm, "--iv-method", iv_method, params_file)
    params = cgd.parse(params_file.read_text())
    plain = os.urandom(3 * 1024 * 1024 + 7 * 512)
    (tmp_path / "plain.img").write_bytes(plain)

    run_ok("encrypt", params_file, tmp_path / "plain.img", tmp_path / "enc.img")
    encrypted = (tmp_path / "enc.img").read_bytes()
    assert len(encrypted) == len(plain)
    cipher = make_cipher(params.algorithm, cgd.derive_key(params), params.iv_method)
    for sector in (0, 1, 4097, len(plain) // 512 - 1):
        at = sector * 512
        assert encrypted[at : at + 512] == cipher.encrypt(plain[at : at + 512], sector)

    run_ok("decrypt", params_file, tmp_path / "enc.img", tmp_path / "dec.img")
    assert (tmp_path / "dec.img").read_bytes() == plain
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dec.img",
        "enc.img",
        "p.params",
        "plain.img",
    ]


def test_size_not_a_multiple_of_512_writes_nothing(tmp_path):
    params_file = write_params(tmp_path / "p.params", cgd.generate("aes-xts"))
    (tmp_path / "odd.img").write_bytes(os.urandom(512 * 10 + 100))
    assert_refused(
        run_cli("encrypt", params_file, tmp_path / "odd.img", tmp_path / "out.img"),
        "5220 bytes, not a whole number of 512-byte sectors",
        "hint:",
    )
    assert not (tmp_path / "out.img").exists()

    (tmp_path / "out.img").write_bytes(b"precious")
    assert_refused(run_cli("decrypt", params_file, tmp_path / "odd.img", tmp_path / "out.img"))
    assert (tmp_path / "out.img").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.img", "out.img", "p.params"]


def test_bad_params_file_writes_nothing(tmp_path):
    params_file = tmp_path / "bad.params"
    params_file.write_text("algorithm aes-xts;\nkeylength 100;\nkeygen randomkey;\n")
    (tmp_path / "plain.img").write_bytes(bytes(4096))
    assert_refused(
        run_cli("encrypt", params_file, tmp_path / "plain.img", tmp_path / "out.img"),
        f"{params_file} line 2: aes-xts does not take a 100-bit key",
        "hint: aes-xts key lengths (bits): 256, 512",
    )
    assert_refused(
        run_cli("encrypt", tmp_path / "none.params", tmp_path / "plain.img", tmp_path / "o.img"),
        "cannot read params file",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.params", "plain.img"]


def test_missing_input_is_reported(tmp_path):
    params_file = write_params(tmp_path / "p.params", cgd.generate("aes-cbc"))
    assert_refused(
        run_cli("encrypt", params_file, tmp_path / "nope.img", tmp_path / "out.img"),
        "cannot read",
        "No such file",
    )
    assert not (tmp_path / "out.img").exists()


def test_random_key_params_are_refused(tmp_path):
    params_file = write_params(
        tmp_path / "swap.params", cgd.generate("aes-xts", keygen="randomkey")
    )
    (tmp_path / "enc.img").write_bytes(bytes(4096))
    assert_refused(
        run_cli("decrypt", params_file, tmp_path / "enc.img", tmp_path / "dec.img"),
        "randomkey",
        "never stored",
    )
    assert not (tmp_path / "dec.img").exists()
    with pytest.raises(DomusError, match="the key was random and is gone"):
        decrypt_file(cgd.parse(params_file.read_text()), tmp_path / "enc.img", tmp_path / "d")


def test_passphrase_params(tmp_path):
    params_file = tmp_path / "pw.params"
    run_ok("genparams", "--keygen", "pkcs5_pbkdf2/sha1", "--iterations", "1000", params_file)
    (tmp_path / "pass").write_text("correct horse\n")
    (tmp_path / "other").write_text("battery staple\n")
    plain = os.urandom(64 * 1024)
    (tmp_path / "plain.img").write_bytes(plain)

    assert_refused(
        run_cli("encrypt", params_file, tmp_path / "plain.img", tmp_path / "enc.img"),
        "needs a passphrase",
        "--passphrase-file",
    )
    assert not (tmp_path / "enc.img").exists()

    def crypt(command: str, src: str, dst: str, passfile: str) -> None:
        pass_file = tmp_path / passfile
        run_ok(command, "--passphrase-file", pass_file, params_file, tmp_path / src, tmp_path / dst)

    crypt("encrypt", "plain.img", "enc.img", "pass")
    crypt("decrypt", "enc.img", "dec.img", "pass")
    assert (tmp_path / "dec.img").read_bytes() == plain
    crypt("decrypt", "enc.img", "wrong.img", "other")  # verify_method none cannot tell
    assert (tmp_path / "wrong.img").read_bytes() != plain
    # The trailing newline of the passphrase file is not part of the passphrase.
    key = cgd.derive_key(cgd.parse(params_file.read_text()), b"correct horse")
    cipher = make_cipher("aes-xts", key)
    assert (tmp_path / "enc.img").read_bytes()[:512] == cipher.encrypt(plain[:512], 0)


def test_wrong_key_is_refused_by_ffs_verification(tmp_path):
    image = ffs_image(tmp_path)
    (tmp_path / "fs.img").write_bytes(image)
    right = write_params(tmp_path / "right.params", cgd.generate("aes-xts", verify_method="ffs"))
    wrong = write_params(tmp_path / "wrong.params", cgd.generate("aes-xts", verify_method="ffs"))

    run_ok("encrypt", right, tmp_path / "fs.img", tmp_path / "enc.img")
    assert_refused(
        run_cli("decrypt", wrong, tmp_path / "enc.img", tmp_path / "dec.img"),
        "wrong key or passphrase",
    )
    assert not (tmp_path / "dec.img").exists()
    run_ok("decrypt", right, tmp_path / "enc.img", tmp_path / "dec.img")
    assert (tmp_path / "dec.img").read_bytes() == image


def test_ffs_verification_with_a_fake_superblock(tmp_path):
    plain = bytearray(os.urandom(512 * 1024))
    plain[65536 + 1372 : 65536 + 1376] = (0x19540119).to_bytes(4, "big")
    (tmp_path / "plain.img").write_bytes(plain)
    right = cgd.generate("aes-cbc", 256, verify_method="ffs")
    wrong = cgd.generate("aes-cbc", 256, verify_method="ffs")
    encrypt_file(right, tmp_path / "plain.img", tmp_path / "enc.img")
    with pytest.raises(DomusError, match="wrong key or passphrase"):
        decrypt_file(wrong, tmp_path / "enc.img", tmp_path / "dec.img")
    assert not (tmp_path / "dec.img").exists()
    decrypt_file(right, tmp_path / "enc.img", tmp_path / "dec.img")
    assert (tmp_path / "dec.img").read_bytes() == plain


def test_encrypt_refuses_non_ffs_input_when_params_want_ffs(tmp_path):
    (tmp_path / "plain.img").write_bytes(os.urandom(512 * 1024))
    params_file = write_params(tmp_path / "p.params", cgd.generate("aes-xts", verify_method="ffs"))
    assert_refused(
        run_cli("encrypt", params_file, tmp_path / "plain.img", tmp_path / "enc.img"),
        "has no FFS superblock",
    )
    assert not (tmp_path / "enc.img").exists()


def test_worker_processes_give_the_same_bytes(tmp_path):
    (tmp_path / "plain.img").write_bytes(os.urandom(1024 * 1024 + 512 * 3))
    params = cgd.generate("aes-cbc", 192)
    encrypt_file(params, tmp_path / "plain.img", tmp_path / "one.img", jobs=1)
    encrypt_file(params, tmp_path / "plain.img", tmp_path / "two.img", jobs=2, chunk_size=65536)
    assert (tmp_path / "one.img").read_bytes() == (tmp_path / "two.img").read_bytes()
    decrypt_file(params, tmp_path / "two.img", tmp_path / "back.img", jobs=2, chunk_size=65536)
    assert (tmp_path / "back.img").read_bytes() == (tmp_path / "plain.img").read_bytes()


class FailingCipher(SectorCipher):
    """Encrypts the first chunk, then fails, as a full disk or a bug would mid-stream."""

    algorithm = "aes-xts"
    iv_method = "encblkno1"

    def __init__(self) -> None:
        self.key = os.urandom(64)
        self.calls = 0

    def encrypt(self, data, first_sector):
        self.calls += 1
        if self.calls > 1:
            raise DomusError("simulated failure")
        return bytes(data)

    decrypt = encrypt


def test_failure_mid_stream_leaves_no_output(tmp_path):
    (tmp_path / "plain.img").write_bytes(bytes(4 * 65536))
    (tmp_path / "out.img").write_bytes(b"old")
    cipher = FailingCipher()
    with pytest.raises(DomusError, match="simulated failure"):
        encrypt_file(cipher, tmp_path / "plain.img", tmp_path / "out.img", chunk_size=65536)
    assert cipher.calls == 2
    assert (tmp_path / "out.img").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.img", "plain.img"]


def test_adiantum_is_refused_clearly(tmp_path):
    params_file = write_params(tmp_path / "a.params", cgd.generate("adiantum"))
    (tmp_path / "plain.img").write_bytes(bytes(4096))
    assert_refused(
        run_cli("encrypt", params_file, tmp_path / "plain.img", tmp_path / "enc.img"),
        "adiantum is not supported",
    )
    assert not (tmp_path / "enc.img").exists()
