"""A NetBSD-like release served over HTTP on 127.0.0.1: sets, a gzipped kernel and their
SHA512 files, with ways to misbehave (a corrupted file, a connection dropped mid-body)."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.sites import REPO

EXAMPLE = REPO / "config" / "example"
SETS = "/NetBSD-10.1/amd64/binary/sets/"
KERNELS = "/NetBSD-10.1/amd64/binary/kernel/"


# Directories of the example root that its checkout cannot hold, being empty.
EMPTY_DIRS = {"tmp": 0o1777, "var/log": 0o755, "var/run": 0o755, "var/spool": 0o755}


def make_set(
    top: Path,
    members: list[str],
    extra: dict[str, bytes] | None = None,
    directories: dict[str, int] | None = None,
) -> bytes:
    """A set tarball of `members` (paths below `top`, directories whole) owned by root."""
    buffer = io.BytesIO()

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname, info.gname = "root", "wheel"
        return info

    # gzip stamps the time it compresses; a fixed stamp keeps equal sets byte for byte equal
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w") as tar,
    ):
        tar.add(top, arcname=".", recursive=False, filter=as_root)
        for member in members:
            tar.add(top / member, arcname=f"./{member}", filter=as_root)
        for name, mode in (directories or {}).items():
            info = as_root(tarfile.TarInfo(f"./{name}"))
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for name, data in (extra or {}).items():
            info = as_root(tarfile.TarInfo(f"./{name}"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha512_listing(files: dict[str, bytes]) -> bytes:
    return "".join(
        f"SHA512 ({name}) = {hashlib.sha512(data).hexdigest()}\n"
        for name, data in sorted(files.items())
    ).encode()


class Release:
    """What the server holds: path -> bytes, plus the paths it corrupts or cuts short."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.corrupt: set[str] = set()
        self.drop: set[str] = set()
        self.requests: list[str] = []
        self.publish_sets(motd=b"release 1\n")
        kernel = (EXAMPLE / "netbsd-XEN3_DOMU").read_bytes()
        self.kernel = kernel
        packed = gzip.compress(kernel)
        self.files[KERNELS + "netbsd-XEN3_DOMU.gz"] = packed
        self.files[KERNELS + "SHA512"] = sha512_listing({"netbsd-XEN3_DOMU.gz": packed})

    def publish_sets(self, motd: bytes) -> None:
        """base.tgz (everything but /etc) and etc.tgz, with a /etc/motd of our own."""
        root = EXAMPLE / "root"
        base = make_set(
            root, [p.name for p in root.iterdir() if p.name != "etc"], directories=EMPTY_DIRS
        )
        etc = make_set(root, ["etc"], {"etc/motd": motd})
        self.files[SETS + "base.tgz"] = base
        self.files[SETS + "etc.tgz"] = etc
        self.files[SETS + "SHA512"] = sha512_listing({"base.tgz": base, "etc.tgz": etc})

    def fetched(self, name: str) -> int:
        return sum(1 for path in self.requests if path.endswith("/" + name))


class Handler(BaseHTTPRequestHandler):
    release: Release

    def do_GET(self) -> None:
        self.release.requests.append(self.path)
        body = self.release.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.release.corrupt:
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        if self.path in self.release.drop:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(release: Release) -> Iterator[str]:
    """Serve `release` on 127.0.0.1 at a free port; yield the base URL."""
    handler = type("ReleaseHandler", (Handler,), {"release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
