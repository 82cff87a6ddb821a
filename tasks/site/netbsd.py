"""What NetBSD and cgd(4) allow, and the policy domus applies to every domU by default."""

from __future__ import annotations

import platform

from tasks.cgd.table import CipherSpec
from tasks.site.reader import or_list

FILE_SYSTEMS = ("ffs", "ext2fs")
BLOCKDEV_BACKENDS = ("auto", "vnd", "loop", "none")
SET_SUFFIXES = (".tgz", ".tar.gz", ".tar.xz")
# pkgsrc builds .tgz by default; .tbz and .txz are its bzip2 and xz variants. Python's
# tarfile reads all three, so the pkg recipe needs nothing more.
PACKAGE_SUFFIXES = (".tgz", ".tbz", ".txz")


def allowed_keylengths(cipher: CipherSpec) -> str:
    """The key lengths of `cipher` as a setting's message names them."""
    lengths = cipher.keylengths
    if len(lengths) > 4:
        return f"{lengths[0]} to {lengths[-1]} in steps of {lengths[1] - lengths[0]}"
    return or_list(lengths)


# The systems a dom0 runs, as the `dom0` setting names them (platform.system(), lowercased)
DOM0_SYSTEMS = ("netbsd", "linux")
# The bridge a domU's vif joins unless its vif spec says otherwise: NetBSD's vif-bridge
# script adds the vif to the bridge it is named (under `sh -e`, so a missing one fails
# `xl create`) and NetBSD calls bridges bridgeN; Linux dom0s conventionally use xenbr0.
DEFAULT_BRIDGE = {"netbsd": "bridge0", "linux": "xenbr0"}


def this_dom0() -> str | None:
    """The `dom0` value of this host's system; None on a system that is neither."""
    system = platform.system().lower()
    return system if system in DOM0_SYSTEMS else None


def default_vif(dom0: str) -> tuple[str, ...]:
    return (f"bridge={DEFAULT_BRIDGE[dom0]}",)


# Who opens an encrypted local.img at boot: nobody (plain), the dom0 (cgd on the dom0,
# key in the key directory), or the domU (a passphrase typed on its console).
LOCAL_ENCRYPTION = ("none", "dom0", "domu")

# Devices the patched MAKEDEV `init` target makes beyond the standard ones: the domU's
# extra disks, packet filters, tunnels and the devices ntpd, sysmon and vnconfig need.
# fmt: off
MAKEDEV_ADD = (
    "xbd2", "xbd3", "xbd4", "sysmon", "clockctl", "ipl", "pf", "crypto",
    "tun0", "tun1", "tun2", "tun3", "tap", "tap0", "tap1", "tap2", "tap3", "kttcp", "vnd0",
)

# Hardware a Xen PV domU never has, and drivers whose work belongs to the dom0. Shell
# patterns, so that each matches what a release's MAKEDEV has and may match nothing. Kept on
# purpose: cgd (encrypted swap and local.img), vnd, md, bpf, pf/npf/ipl, tun/tap, fss, dk
# (wedges on an xbd), and the other pseudo-devices, which work the same in a domU.
MAKEDEV_REMOVE = (
    # Consoles and serial lines: the domU's console is xencons; there is no wscons screen and
    # no com(4) port, so tty0N/dty0N, the Cyclades/Cyclom cards and IrDA go.
    "wscons*", "tty[0-9]*", "ttyCZ[0-9]*", "ttyCY[0-9]*", "cir[0-9]*", "irframe[0-9]*",
    # Disk, tape and flash controllers: a domU's disks are xbd(4) (so ld goes too).
    "fd[0-9]*", "wt[0-9]*", "wd[0-9]*", "sd[0-9]*", "flash[0-9]*",
    "st[0-9]*", "ch[0-9]*", "cd[0-9]*", "mcd[0-9]*",
    "amr[0-9]*", "iop[0-9]*", "mfi[0-9]*", "mlx[0-9]*", "mly[0-9]*", "dpti[0-9]*",
    "dpt[0-9]*", "twe[0-9]*", "nvme[0-9]*", "ld[0-9]*", "atabus[0-9]*",
    "scsibus[0-9]*", "ses[0-9]*",
    # RAIDframe and ccd: redundancy and concatenation of disks are the dom0's, which hands
    # each domU whole xbd disks built on them.
    "raid[0-9]*", "ccd[0-9]*",
    # altmem is physical memory the pmap cannot map (an i386 PAE feature), absent in a domU.
    "altmem*",
    # Printers, scanners, sound, MIDI, joysticks, buses and graphics: no such hardware.
    "lpa[0-9]*", "lpt[0-9]*", "ss[0-9]*", "uk[0-9]*", "speaker*", "joy[0-9]*",
    "satlink[0-9]*", "audio*", "radio*", "music*", "rmidi[0-9]*", "pad*",
    "bktr*", "agp[0-9]*", "pci[0-9]*", "usbs*", "gpio*", "drm[0-9]*",
    "video*", "dtv*", "hdmicec[0-9]*", "fw[0-9]*", "bthub*",
)
# fmt: on

# Where rc.d/random_seed keeps the entropy seed: NetBSD's /var/db/entropy-file, reached
# through /local. random_seed loads and saves only on a directory `df -G` calls ffs, ext2fs,
# ...; /var is a null mount of /local/var, which df calls null, so the default path is
# refused at every boot and shutdown. The same directory seen through /local is on /local's
# own file system, made writable by rc.d/root before random_seed (after mountcritlocal) runs.
LOCAL_MOUNT = "/local"
ENTROPY_FILE = f"{LOCAL_MOUNT}/var/db/entropy-file"

# The rc.conf variables every domU gets; the domain's name is added as `hostname`.
RC_CONF_BUILTIN = (
    ("rc_configured", "YES"),
    ("critical_filesystems_local", "/local /etc /tmp /var"),
    ("powerd", "YES"),
    ("savecore", "NO"),
    ("sendmail", "NO"),
    ("wscons", "NO"),
    ("random_file", ENTROPY_FILE),
)
