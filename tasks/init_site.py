"""`./domus init DIR --release 10.1 [--arch amd64] [--mirror URL]`: a starter site.

DIR gets a site file whose root is the release's base and etc sets and its Xen domU kernel,
all by URL and checked against the release's SHA512 files; one example domU; a site
template directory whose README says how to override a built-in template; and an empty
key directory (0700). The set names come from the release's own SHA512 file (NetBSD 10
ships amd64 sets as .tar.xz, older releases and other ports as .tgz), so init asks the
mirror once and writes only what is there. The site is written into a directory beside
DIR and renamed into place whole: DIR never holds half a site, and a DIR that holds
anything is refused.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from tasks.images.publish import fsync_dir, fsync_file
from tasks.render import BUILTIN
from tasks.run.errors import DomusError, UsageError
from tasks.run.log import note
from tasks.sources.fetch import parse_listing, read_listing

DEFAULT_MIRROR = "https://cdn.netbsd.org/pub/NetBSD"
# The NetBSD ports that run as a Xen PV domU, and the kernel each one boots.
KERNELS = {"amd64": "netbsd-XEN3_DOMU", "i386": "netbsd-XEN3PAE_DOMU"}
SETS = ("base", "etc")  # the least a root needs: the rest of the sets are the operator's choice
SET_SUFFIXES = (".tar.xz", ".tgz")
RELEASE = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?(_[A-Z0-9]+)?$")
EXAMPLE_DOMU = "example"
DOCS = BUILTIN.parent / "docs"  # the pages the files written here point to

SITE = """\
# A domus site for NetBSD {release}/{arch}, written by `./domus init`. Build it with
#   ./domus build config={site}
# Relative paths start at this file's directory; every key, its default and meaning:
# the Reference in {docs}/site.md
output: build
templates: templates  # your templates, found before the built-in ones (templates/README.md)
keys: keys            # keys of encrypted local images (0700); back it up, keep it private

root:
  source:
    # the release's sets, downloaded once and checked against its SHA512 file;
    # add others (comp, man, ...) the same way
    sets:
{sets}
    sha512: {sha512}
  # the Xen domU kernel, checked against the SHA512 file beside it, and decompressed
  kernel: {kernel}
  size: 1g
  fs: ffs

defaults:
  memory: 256m
  vcpus: 1
  rc_conf:
    sshd: YES
    dhcpcd: YES
  local: {{size: 64m, fs: ffs}}
  pkg: {{size: 256m}}  # pkg.source.packages: pkgsrc binary packages for /usr/pkg
  swap: {{size: 128m}}

domains:
  {domu}:
    memory: 256m
    # local: {{encrypt: dom0}}  # encrypt its /local with cgd, key in keys/
"""

TEMPLATES_README = """\
# Site templates

domus renders every file it writes into an image, or beside it, from a Jinja2 template.
This directory is searched before domus's built-in `templates/`, so a file here with the
same relative name overrides the built-in one; a new file under `root/` or `local/` is
written into the image at that path as well.

To override the xl config of every domU, for example:

    mkdir -p xen
    cp {builtin}/xen/domu.cfg xen/domu.cfg
    $EDITOR xen/domu.cfg

and see what it renders for a domU before building:

    ./domus render {domu} xen/domu.cfg config={site}
    ./domus render {domu} xen/domu.cfg --context config={site}   # the values it sees

The built-in templates, and the values each one sees, are listed in
{docs}/templates.md. Files here are trusted input: keep the directory writable by you alone.
"""


def release_urls(mirror: str, release: str, arch: str) -> tuple[str, str]:
    """The sets directory and the kernel directory of a release on a mirror."""
    top = f"{mirror.rstrip('/')}/NetBSD-{release}/{arch}/binary"
    return f"{top}/sets/", f"{top}/kernel/"


def pick(listing: dict[str, str], stem: str, suffixes: tuple[str, ...], where: str) -> str:
    for suffix in suffixes:
        if stem + suffix in listing:
            return stem + suffix
    raise DomusError(
        f"{where} lists no {stem} ({' or '.join(stem + s for s in suffixes)})",
        hint="check --release, --arch and --mirror: the release must be on that mirror",
    )


def site_text(mirror: str, release: str, arch: str, site: Path) -> str:
    sets_dir, kernel_dir = release_urls(mirror, release, arch)
    sets_listing = parse_listing(read_listing(sets_dir + "SHA512"))
    sets = [pick(sets_listing, stem, SET_SUFFIXES, sets_dir + "SHA512") for stem in SETS]
    kernels = parse_listing(read_listing(kernel_dir + "SHA512"))
    kernel = pick(kernels, KERNELS[arch], (".gz", ""), kernel_dir + "SHA512")
    return SITE.format(
        release=release,
        arch=arch,
        site=site,
        sets="\n".join(f"      - {sets_dir}{name}" for name in sets),
        sha512=sets_dir + "SHA512",
        kernel=kernel_dir + kernel,
        domu=EXAMPLE_DOMU,
        docs=DOCS,
    )


def check_arguments(directory: Path, release: str, arch: str, mirror: str) -> None:
    if not RELEASE.match(release):
        raise UsageError(
            f"--release {release!r} is not a NetBSD release", hint="such as 10.1 or 9.4"
        )
    if arch not in KERNELS:
        raise UsageError(
            f"--arch {arch!r}: domus builds Xen PV domUs of {' and '.join(KERNELS)}",
        )
    if not re.match(r"^(https?|ftp)://", mirror):
        raise UsageError(f"--mirror {mirror!r} is not an http, https or ftp URL")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise DomusError(
            f"{directory} is not an empty directory; nothing was written",
            hint="name a new directory (or an empty one): init never writes over a site",
        )


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    fsync_file(path)


def init(directory: Path, release: str, arch: str, mirror: str) -> int:
    check_arguments(directory, release, arch, mirror)
    site = directory / "site.yaml"
    text = site_text(mirror, release, arch, site)  # before anything is written
    partial = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        write(partial / "site.yaml", text)
        write(
            partial / "templates" / "README.md",
            TEMPLATES_README.format(domu=EXAMPLE_DOMU, site=site, builtin=BUILTIN, docs=DOCS),
        )
        os.mkdir(partial / "keys", 0o700)
        os.chmod(partial / "keys", 0o700)  # whatever the umask
        fsync_dir(partial)
        os.replace(partial, directory)  # an empty DIR is replaced, a full one refused
        fsync_dir(directory.parent)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    note(f"wrote {site}: NetBSD {release}/{arch} from {mirror}, one domU ({EXAMPLE_DOMU})")
    print(f"next: ./domus build config={site}")
    return 0
