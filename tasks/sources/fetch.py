"""Downloading a set or a kernel given by URL, checked before it replaces the cached copy.

The release's SHA512 file is fetched on every run (it is small); the file itself only when
the checksum listed there differs from the one its cached copy was verified against. A
download goes to a temporary name and is renamed into the cache only once its SHA512
matches, so a corrupt or interrupted download leaves the previous copy, and everything
built from it, as it was. Nothing is resumed: a failed download starts again next run.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from tasks.images.publish import fsync_dir, fsync_file, write_file
from tasks.run.errors import DomusError
from tasks.run.log import note
from tasks.run.progress import Progress
from tasks.sources.urls import Download, looks_like_url

BLOCK = 1 << 20
TIMEOUT = 60.0  # seconds without a byte before a download counts as interrupted
# NetBSD's `cksum -a SHA512` lines, and coreutils' sha512sum lines
BSD_LINE = re.compile(r"^SHA512 \((.+)\) = ([0-9a-fA-F]{128})\s*$")
GNU_LINE = re.compile(r"^([0-9a-fA-F]{128}) [ *](.+?)\s*$")
AGAIN = "run again to download it anew; the cached copy and the images are unchanged"


def record_path(download: Download) -> Path:
    return download.path.with_name(download.path.name + ".sha512")


def recorded(download: Download) -> str | None:
    try:
        return record_path(download).read_text().strip() or None
    except FileNotFoundError:
        return None


def parse_listing(text: str) -> dict[str, str]:
    listing = {}
    for line in text.splitlines():
        if match := BSD_LINE.match(line):
            listing[match[1]] = match[2].lower()
        elif match := GNU_LINE.match(line):
            listing[match[2]] = match[1].lower()
    return listing


def read_listing(source: str) -> str:
    if not looks_like_url(source):
        try:
            return Path(source).read_text()
        except OSError as error:
            raise DomusError(f"{source}: cannot read this SHA512 file: {error.strerror}") from None
    try:
        with urllib.request.urlopen(source, timeout=TIMEOUT) as response:
            return response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        raise DomusError(
            f"{source}: the server answered {error.code} {error.reason}",
            hint="check the URL; a release's sets have theirs in .../amd64/binary/sets/SHA512",
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DomusError(
            f"{source}: cannot fetch the SHA512 file: {reason}",
            hint="check the network and the URL; nothing was changed",
        ) from None


def expected_sha512(download: Download) -> str:
    listing = parse_listing(read_listing(download.sha512))
    try:
        return listing[download.name]
    except KeyError:
        raise DomusError(
            f"{download.sha512} lists no {download.name}",
            hint="name the SHA512 file of the same release directory (`root.source.sha512`)",
        ) from None


def up_to_date(download: Download) -> bool:
    """The cached copy is the one the SHA512 file lists now. Any doubt (the server cannot
    be reached, say) is False: the download task then runs and reports it."""
    try:
        return download.path.is_file() and recorded(download) == expected_sha512(download)
    except DomusError:
        return False


def fetch(download: Download) -> None:
    expected = expected_sha512(download)
    if download.path.is_file() and recorded(download) == expected:
        return
    download.path.parent.mkdir(parents=True, exist_ok=True)
    partial = download.path.with_name(f".{download.path.name}.partial")
    unpacked = download.path.with_name(f".{download.path.name}.unpacked")
    start = time.monotonic()
    try:
        size, digest = _download(download.url, partial)
        if digest != expected:
            raise DomusError(
                f"{download.url}: the download does not match its SHA512 in {download.sha512} "
                f"(expected {expected[:16]}..., got {digest[:16]}...); it was discarded",
                hint="the mirror may be corrupt or in the middle of an update: try again "
                "later or use another mirror; the cached copy and the images are unchanged",
            )
        fsync_file(partial)
        if download.gunzip:
            _gunzip(download, partial, unpacked)
            os.replace(unpacked, download.path)
        else:
            os.replace(partial, download.path)
        fsync_dir(download.path.parent)
        write_file(record_path(download), expected + "\n")
    finally:
        partial.unlink(missing_ok=True)
        unpacked.unlink(missing_ok=True)
    note(
        f"downloaded {download.url} ({size / (1 << 20):.1f} MiB in "
        f"{time.monotonic() - start:.1f} s), SHA512 checked"
    )


def _download(url: str, dest: Path) -> tuple[int, str]:
    digest = hashlib.sha512()
    received = 0
    length: int | None = None
    progress = Progress(url.rpartition("/")[2])
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(dest, "wb") as out:
            header = response.headers.get("Content-Length")
            length = int(header) if header and header.isdigit() else None
            progress.total = length
            while block := response.read(BLOCK):
                out.write(block)
                digest.update(block)
                received += len(block)
                progress.update(received)
    except urllib.error.HTTPError as error:
        raise DomusError(
            f"{url}: the server answered {error.code} {error.reason}",
            hint="check the URL in the site file",
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", None) or error.__class__.__name__
        raise DomusError(
            f"{url}: the download was interrupted after {_bytes(received, length)} ({reason})",
            hint=AGAIN,
        ) from None
    finally:
        progress.close()
    if length is not None and received != length:
        raise DomusError(
            f"{url}: the download was interrupted after {_bytes(received, length)}", hint=AGAIN
        )
    return received, digest.hexdigest()


def _bytes(received: int, length: int | None) -> str:
    return f"{received} of {length} bytes" if length is not None else f"{received} bytes"


def _gunzip(download: Download, packed: Path, unpacked: Path) -> None:
    try:
        with gzip.open(packed, "rb") as source, open(unpacked, "wb") as out:
            shutil.copyfileobj(source, out, BLOCK)
    except (OSError, EOFError) as error:
        raise DomusError(
            f"{download.url}: cannot decompress it: {error}",
            hint="its SHA512 matched: the release itself holds a bad file",
        ) from None
    fsync_file(unpacked)
