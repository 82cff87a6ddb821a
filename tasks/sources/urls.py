"""Files a site names by URL: which URLs are accepted, and where the verified copies live.

A set or the kernel may be an http, https or ftp URL. Each is checked against a SHA512
file of the release (`SHA512 (base.tgz) = <hex>`, as in .../amd64/binary/sets/SHA512),
by default the one beside it. The verified file is kept in `<output>/cache/downloads/`
under its own name; a kernel URL ending in .gz is kept decompressed.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

SCHEMES = ("http", "https", "ftp")
CHECKSUMS = "SHA512"


@dataclass(frozen=True)
class Url:
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def name(self) -> str:
        """The file name the URL ends in, as the SHA512 file lists it."""
        return unquote(posixpath.basename(urlsplit(self.text).path))

    def beside(self, name: str) -> Url:
        return Url(urljoin(self.text, name))


@dataclass(frozen=True)
class Download:
    url: str
    sha512: str  # URL or absolute path of the SHA512 file that lists the URL's file
    path: Path  # the verified copy
    gunzip: bool = False  # a kernel.gz: checked as it is listed, kept decompressed

    @property
    def name(self) -> str:
        return Url(self.url).name


def looks_like_url(text: str) -> bool:
    return "://" in text


def parse_url(text: str) -> Url:
    """`text` as a URL domus can download, or ValueError saying what is expected."""
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"expected an http, https or ftp URL, got the scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError(f"expected a URL with a host name, got {text!r}")
    url = Url(text)
    if not url.name:
        raise ValueError(f"expected a URL that ends in a file name, got {text!r}")
    return url


def local_files(
    sets: tuple[Path | Url, ...], sets_sha512: Path | Url | None, kernel: Path | Url, cache: Path
) -> tuple[tuple[Path, ...], Path, tuple[Download, ...]]:
    """The sets and kernel as local files (URLs become their copies in `cache`), and the
    downloads that make those copies."""
    downloads: list[Download] = []

    def local(item: Path | Url, sha512: Path | Url | None, gunzip: bool = False) -> Path:
        if isinstance(item, Path):
            return item
        listing = sha512 if sha512 is not None else item.beside(CHECKSUMS)
        gunzip = gunzip and item.name.endswith(".gz")
        path = cache / (item.name.removesuffix(".gz") if gunzip else item.name)
        downloads.append(Download(item.text, str(listing), path, gunzip))
        return path

    local_sets = tuple(local(item, sets_sha512) for item in sets)
    return local_sets, local(kernel, None, gunzip=True), tuple(downloads)
