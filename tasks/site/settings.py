"""Every setting of a site file in one table: how it is read, its default, its help and
the model field it fills.

tasks.site.reader walks the YAML by these tables, tasks.site.load fills the model from
them, and tasks.site.reference turns them into the reference in docs/site.md, so the three
cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode

from tasks.cgd.table import CIPHERS, DEFAULT_CIPHER, SUPPORTED_CIPHERS
from tasks.site.kinds import (
    Boolean,
    Choice,
    FileOrUrl,
    Integer,
    KeyLength,
    ListOf,
    Memory,
    PathKind,
    RcConf,
    Size,
    Word,
)
from tasks.site.model import MAX_FILE_SIZE
from tasks.site.netbsd import (
    BLOCKDEV_BACKENDS,
    DEFAULT_BRIDGE,
    DOM0_SYSTEMS,
    FILE_SYSTEMS,
    LOCAL_ENCRYPTION,
    MAKEDEV_ADD,
    MAKEDEV_REMOVE,
    PACKAGE_SUFFIXES,
    RC_CONF_BUILTIN,
    SET_SUFFIXES,
    allowed_keylengths,
)
from tasks.site.reader import (
    REQUIRED,
    Context,
    Group,
    Kind,
    Layer,
    Setting,
    Table,
    got,
    is_null,
    line_of,
    read_layer,
)
from tasks.site.sizes import MiB

DEVICE = Word(r"[A-Za-z0-9_]+", "a MAKEDEV device name (letters, digits and '_')", "device name")
DEVICE_PATTERN = Word(
    r"[A-Za-z0-9_*?\[\]-]+",
    "a MAKEDEV device name or a shell pattern such as 'wd[0-9]*'",
    "device name or pattern",
)
VIF = Word(
    r"[^\"'\n\r]*",
    "an xl vif spec such as 'bridge=bridge0', without quote characters or newlines",
    "xl vif spec",
)

HOST_NAME = Word(
    r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,62})",
    "a host name of `hosts`: letters, digits, '.', '_' and '-'",
    "host name",
)

DOMAIN = Table(
    [
        Setting(
            "memory", Memory(), 256, "Memory of the domU; 32m to 2047g (Xen's PV limit), whole MiB"
        ),
        Setting("vcpus", Integer(1, 64), 1, "Number of virtual CPUs"),
        Setting(
            "vif",
            ListOf(VIF, "a list of xl vif specs such as ['bridge=bridge0']"),
            None,
            "Network interfaces, as xl vif specs; the bridge must exist on the dom0",
            default_doc=", ".join(
                f"bridge={bridge} ({dom0} dom0)" for dom0, bridge in DEFAULT_BRIDGE.items()
            ),
        ),
        Setting(
            "rc_conf",
            RcConf(),
            RC_CONF_BUILTIN,
            "rc.conf variables; yes/no become YES/NO; merged by variable",
            default_doc=RcConf().show(RC_CONF_BUILTIN) + " hostname=<name>",
        ),
        Group("local", "local.img, mounted on /local: the domU's own state"),
        Setting("local.size", Size(), 64 * MiB, "Size of local.img"),
        Setting("local.fs", Choice(FILE_SYSTEMS), "ffs", "File system of local.img"),
        Setting(
            "local.density",
            Size(1024, 64 * MiB),
            None,
            "Bytes of local.img per inode, as `newfs -i` (FFS) or `mke2fs -i` (ext2fs); "
            "a changed value makes an FFS image anew at the next build, files kept",
            default_doc="newfs's: 2k below 20m, 4k below 1000m, 8k above (FFS); mke2fs's (ext2fs)",
        ),
        Setting(
            "local.encrypt",
            Choice(LOCAL_ENCRYPTION),
            "none",
            "Encrypt local.img with cgd: `dom0` opens it on the dom0 with a key kept in the key "
            "directory; `domu` opens it in the domU with a passphrase typed on its console "
            "and needs `fs: ffs` (cgdconfig tells a wrong passphrase by the FFS superblock)",
        ),
        Setting(
            "local.cipher",
            Choice(SUPPORTED_CIPHERS),
            DEFAULT_CIPHER,
            "cgd cipher of an encrypted local.img",
        ),
        Setting(
            "local.keylength",
            KeyLength(),
            None,
            "cgd key length in bits of an encrypted local.img, as for swap",
            default_doc="by cipher, as for swap",
        ),
        Group("pkg", "pkg.img, mounted on /usr/pkg"),
        Setting("pkg.size", Size(), 256 * MiB, "Size of pkg.img"),
        Setting("pkg.fs", Choice(FILE_SYSTEMS), "ffs", "File system of pkg.img"),
        Group(
            "pkg.source",
            "What goes into pkg.img: `tree` or `packages`; null or absent is an empty image. "
            "Taken whole from the domain or from defaults, never merged",
            atomic=True,
            expected="a mapping with one of the keys tree, packages (or null for an empty image)",
        ),
        Setting(
            "pkg.source.tree",
            PathKind("directory"),
            None,
            "Directory tree to copy into pkg.img",
        ),
        Setting(
            "pkg.source.packages",
            ListOf(
                PathKind("file", suffixes=PACKAGE_SUFFIXES),
                "a list of at least one pkgsrc binary package file "
                "(use source: null for an empty image)",
                min_items=1,
            ),
            (),
            "pkgsrc binary packages (.tgz, .tbz or .txz) to install into pkg.img",
        ),
        Group("swap", "swap.img, used through cgd with a random key"),
        Setting("swap.size", Size(), 128 * MiB, "Size of swap.img"),
        Setting("swap.cipher", Choice(CIPHERS), DEFAULT_CIPHER, "cgd cipher for swap"),
        Setting(
            "swap.keylength",
            KeyLength(),
            None,
            "cgd key length in bits; allowed: "
            + "; ".join(f"{name} {allowed_keylengths(c)}" for name, c in CIPHERS.items()),
            default_doc="by cipher: "
            + ", ".join(f"{name} {c.default_keylength}" for name, c in CIPHERS.items()),
        ),
        Setting(
            "host",
            HOST_NAME,
            None,
            "The dom0 of `hosts` the domU runs on (required when `hosts` is set); "
            "`./domus deploy` puts it there",
        ),
    ]
)


# --- domains --------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainEntry:
    name: str
    line: int
    layer: Layer


DOMAIN_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
DOMAIN_NAME_RULE = (
    "a domain name usable as a file name and a host name: 1 to 63 lowercase letters, "
    "digits and '-', starting and ending with a letter or digit"
)


class Defaults(Kind):
    type_doc = "mapping"
    expected = "a mapping of domain settings"

    def parse(self, node: Node, key: str, ctx: Context) -> Layer:
        if not isinstance(node, MappingNode):
            raise self.fail(node)
        return read_layer(node, key, DOMAIN, ctx)


class Domains(Kind):
    type_doc = "mapping: name → domain settings"
    expected = "a mapping of domain name to domain settings, with at least one domain"

    def parse(self, node: Node, key: str, ctx: Context) -> tuple[DomainEntry, ...]:
        if not isinstance(node, MappingNode) or not node.value:
            raise self.fail(node)
        entries = []
        # names that differ only in case clash on case-insensitive file systems
        folded: dict[str, ScalarNode] = {}
        for knode, vnode in ctx.pairs(node, key):
            name = knode.value
            if not DOMAIN_NAME.fullmatch(name):
                ctx.report(knode, f"{key}.{name}", f"expected {DOMAIN_NAME_RULE}")
            other = folded.setdefault(name.lower(), knode)
            if other is not knode:
                ctx.report(
                    knode,
                    f"{key}.{name}",
                    f"differs from '{other.value}' (line {line_of(other)}) only in case; "
                    "expected a name unique regardless of case",
                )
            entries.append(DomainEntry(name, line_of(knode), self._entry(vnode, name, key, ctx)))
        return tuple(entries)

    def _entry(self, node: Node, name: str, key: str, ctx: Context) -> Layer:
        if is_null(node):
            return Layer()
        if not isinstance(node, MappingNode):
            ctx.report(
                node,
                f"{key}.{name}",
                f"expected a mapping of domain settings (or nothing, for all defaults), "
                f"got {got(node)}",
            )
            return Layer()
        return read_layer(node, f"{key}.{name}", DOMAIN, ctx)


# --- hosts: the dom0s `./domus deploy` puts domUs on -------------------------------------

HOST = Table(
    [
        Setting(
            "address",
            Word(
                r"[A-Za-z0-9_.:%-]+",
                "a host name or IP address to reach the dom0 at with ssh",
                "host name or address",
            ),
            REQUIRED,
            "Where ssh reaches the dom0",
        ),
        Setting(
            "user",
            Word(r"[A-Za-z_][A-Za-z0-9_.-]*", "a user name", "user name"),
            "root",
            "The ssh user; root, or one that may run xl and attach images",
        ),
        Setting("port", Integer(1, 65535), 22, "The ssh port"),
        Setting(
            "identity",
            PathKind("file"),
            None,
            "ssh private key file on this machine",
            default_doc="ssh's own choice",
        ),
        Setting(
            "host_key",
            Word(
                r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}",
                "an ssh public host key: its type and base64, as one line of the dom0's "
                "/etc/ssh/ssh_host_ed25519_key.pub without the comment",
                "ssh public key",
            ),
            None,
            "The dom0's ssh host key, pinned: deploy talks to no other",
            default_doc="none: accepted by deploy --trust",
        ),
        Setting("dom0", Choice(DOM0_SYSTEMS), "netbsd", "The system the dom0 runs"),
        Setting(
            "output",
            Word(
                r"/[^,\n\r\0]*",
                "an absolute path on the dom0, without a comma (xl ends a disk spec at one)",
                "absolute path on the dom0",
            ),
            "/var/domus",
            "Output directory on the dom0: its images, xl configs and domus itself (below deploy/)",
        ),
        Setting(
            "units",
            Integer(1, 64),
            4,
            "blockdev.units of the dom0: the vnd (or loop) units domus may use there",
        ),
        Setting(
            "python",
            Word(r"/?[A-Za-z0-9_./-]+", "a program name or absolute path", "program"),
            "python3",
            "The Python 3.11 or newer on the dom0 that domus's venv is made from",
        ),
    ]
)


@dataclass(frozen=True)
class HostEntry:
    name: str
    line: int
    layer: Layer


class Hosts(Kind):
    type_doc = "mapping: name → host settings"
    expected = "a mapping of host name to host settings, with at least one host"

    def parse(self, node: Node, key: str, ctx: Context) -> tuple[HostEntry, ...]:
        if not isinstance(node, MappingNode) or not node.value:
            raise self.fail(node)
        entries = []
        for knode, vnode in ctx.pairs(node, key):
            name = knode.value
            if not HOST_NAME.pattern.fullmatch(name):
                ctx.report(knode, f"{key}.{name}", f"expected {HOST_NAME.expected}")
            if not isinstance(vnode, MappingNode):
                ctx.report(
                    vnode,
                    f"{key}.{name}",
                    f"expected a mapping of host settings (at least address), got {got(vnode)}",
                )
                continue
            layer = read_layer(vnode, f"{key}.{name}", HOST, ctx)
            entries.append(HostEntry(name, line_of(knode), layer))
        return tuple(entries)


SITE = Table(
    [
        Setting(
            "output",
            # the xl config of a domU whose local.img the dom0 opens names paths below it in
            # a disk spec, where no comma can be written
            PathKind(
                "directory",
                must_exist=False,
                no_comma="xl ends a disk spec's script= at one, and block-domus-cgd its local.img",
            ),
            "build",
            "Directory for everything built",
        ),
        Setting(
            "templates",
            PathKind("directory"),
            None,
            "Site template directory, searched before the built-in templates/",
        ),
        Setting(
            "keys",
            PathKind("directory", must_exist=False),
            "keys",
            "Key directory (mode 0700, keys 0600) for encrypted local images; keep it out of "
            "the output directory and back it up: a lost key is a lost local.img",
        ),
        Setting(
            "locks",
            PathKind("directory", must_exist=False),
            None,
            "Lock directory",
            default_doc="<output>/locks",
        ),
        Setting(
            "dom0",
            Choice(DOM0_SYSTEMS),
            None,
            "The system of the dom0 the domUs run on: it picks the default vif bridge and "
            "what `./domus check` asks of the dom0",
            default_doc="this host's system",
        ),
        Group("generations", "Generations of root.img and pkg.img, kept for rollback"),
        Setting(
            "generations.keep",
            Integer(1, 1000),
            3,
            "Generations of each image that garbage collection keeps, newest first; the "
            "active, pinned and running ones are kept as well",
        ),
        Group("converge", "Converging a local.img in place"),
        Setting(
            "converge.keep_backups",
            Integer(0, 1000),
            5,
            "Backups of each managed file (NAME.domus-YYYYmmddTHHMMSS beside it in the "
            "image; an rc.d script's in /etc/rc.d.domus-backups) a converge keeps, newest "
            "first; older ones are removed",
        ),
        Setting(
            "converge.keep_images",
            Integer(0, 1000),
            1,
            "Old local.img files a converge that rewrites the image (FFS, unless mounted with "
            "`converge.mount`) keeps beside it as local-converge-YYYYmmddTHHMMSS.img, "
            "newest first; 0 keeps none",
        ),
        Setting(
            "converge.mount",
            Boolean(),
            False,
            "As root on the dom0, converge a local.img by mounting it through `blockdev` "
            "(faster; FFS and cgd images written in place on NetBSD) instead of in user "
            "space (debugfs for ext2fs, a rewrite through makefs for FFS). A mount has the "
            "host kernel parse the domU's own disk, which the domU can craft: each mount is "
            "preceded by `e2fsck -fn` (NetBSD: `fsck_ffs -n`, `fsck_ext2fs -n`), and a "
            "problem refuses the converge",
        ),
        Setting(
            "converge.max_file_size",
            Size(4096, 1024 * MiB),
            MAX_FILE_SIZE,
            "Largest file a converge, `status` or a dry run reads from a local.img (a managed "
            "file, the image's record of them): the domU writes that image, so a larger one "
            "is refused, named, before it is read",
        ),
        Group(
            "blockdev",
            "How images are attached when domus runs as root on the dom0 (to mount a "
            "local.img with `converge.mount`, to read root.source.image, or for NetBSD's "
            "fsck -n)",
        ),
        Setting(
            "blockdev.backend",
            Choice(BLOCKDEV_BACKENDS),
            "auto",
            "`vnd` (vnconfig, NetBSD), `loop` (losetup, Linux), `auto` (the one of this "
            "system) or `none` (never attach, even with `converge.mount`)",
        ),
        Setting(
            "blockdev.units",
            Integer(1, 64),
            4,
            "Units in the pool (vnd0 to vndN-1): at most this many images are attached at "
            "once, across all runs and jobs",
        ),
        Setting(
            "blockdev.wait",
            Integer(0, 86400),
            600,
            "Seconds a job waits for a free unit when all are taken, then fails",
        ),
        Group("root", "The shared read-only root.img", required=True),
        Group(
            "root.source",
            "Where the root file system comes from: exactly one of `tree`, `sets` or `image`",
            required=True,
            expected="a mapping with one of the keys tree, sets, image (and metalog with tree)",
        ),
        Setting(
            "root.source.tree",
            PathKind("directory"),
            None,
            "Directory tree to use as the root file system",
        ),
        Setting(
            "root.source.metalog",
            PathKind("file"),
            None,
            "Only with `tree`: mtree file with owners and modes, like build.sh -U's METALOG",
        ),
        Setting(
            "root.source.sets",
            ListOf(
                FileOrUrl(suffixes=SET_SUFFIXES),
                "a list of at least one NetBSD set tarball",
                min_items=1,
                type_doc="list of files or URLs",
            ),
            (),
            "NetBSD set tarballs (.tgz, .tar.gz or .tar.xz), extracted in order: files, or "
            "http, https or ftp URLs, downloaded once and checked against `sha512`",
        ),
        Setting(
            "root.source.sha512",
            FileOrUrl(),
            None,
            "With set URLs: the release's SHA512 file (a URL or a file) that lists the sets",
            default_doc="SHA512 beside each set's URL",
            dest=None,
        ),
        Setting(
            "root.source.image",
            PathKind("file"),
            None,
            "An existing root.img (ffs or ext2fs) to read the tree from: needs root, is "
            "mounted read-only through `blockdev` and never written",
        ),
        Setting(
            "root.kernel",
            FileOrUrl(),
            REQUIRED,
            "domU kernel, such as netbsd-XEN3_DOMU: a file, or a URL checked against the "
            "SHA512 file beside it (a .gz one is decompressed once checked)",
        ),
        Setting("root.size", Size(), REQUIRED, "Size of root.img"),
        Setting("root.fs", Choice(FILE_SYSTEMS), "ffs", "File system of root.img"),
        Group("root.makedev", "How the MAKEDEV `init` target is patched"),
        Setting(
            "root.makedev.add",
            ListOf(DEVICE, "a list of MAKEDEV device names"),
            MAKEDEV_ADD,
            "Devices made at boot beyond the standard ones",
            dest="root.makedev_add",
        ),
        Setting(
            "root.makedev.remove",
            ListOf(DEVICE_PATTERN, "a list of MAKEDEV device names or shell patterns"),
            MAKEDEV_REMOVE,
            "Devices not made at boot: hardware a Xen domU never has. Shell patterns may match "
            "nothing; a plain name must be one the init target makes (a typo is an error). "
            "The default leaves out any device listed in `add`",
            dest="root.makedev_remove",
        ),
        Setting(
            "hosts",
            Hosts(),
            None,
            "The dom0s `./domus deploy` puts the domUs on, by name (see `hosts.<name>.` "
            "below); without it everything is built for this machine",
            dest=None,
        ),
        Setting(
            "defaults",
            Defaults(),
            None,
            "Settings every domain starts from: any `domains.<name>.` key below",
            dest=None,
        ),
        Setting(
            "domains",
            Domains(),
            REQUIRED,
            "Domain name → settings; an empty entry takes all defaults. "
            "Names: lowercase letters, digits and '-', at most 63",
            dest=None,
        ),
    ]
)
