"""What each template sees: exactly the part of the site its image is built from.

The same dictionaries feed doit's `config_changed`, so a task reruns when, and only
when, something its files are made from has changed.
"""

from __future__ import annotations

from tasks.config import DomU, Site
from tasks.layout import Layout

LOCAL_DEVICE = "xbd2a"


def root_context(site: Site) -> dict[str, object]:
    return {
        "kernel": site.root.kernel.name,
        "local_device": LOCAL_DEVICE,
        "local_fs_types": sorted({domu.local.fs for domu in site.domus}),
    }


def local_context(site: Site, domu: DomU) -> dict[str, object]:
    return {
        "name": domu.name,
        "root": {"fs": site.root.fs},
        "local": {"fs": domu.local.fs, "size": domu.local.size},
        "pkg": {"fs": domu.pkg.fs},
        "swap": {
            "size": domu.swap.size,
            "sectors": domu.swap.size // 512,
            "cipher": domu.swap.cipher,
            "keylength": domu.swap.keylength,
        },
        "rc_conf": dict(domu.rc_conf),
    }


def xen_context(site: Site, domu: DomU, layout: Layout) -> dict[str, object]:
    return {
        "name": domu.name,
        "memory": domu.memory,
        "vcpus": domu.vcpus,
        "vifs": list(domu.vif),
        "kernel": str(layout.kernel(site.root.kernel.name)),
        "config_path": str(layout.xen_config(domu.name)),
        "images": {
            "root": str(layout.root_image),
            "swap": str(layout.swap_image(domu.name)),
            "local": str(layout.local_image(domu.name)),
            "pkg": str(layout.pkg_image(domu.name)),
        },
    }
