"""What each template sees: exactly the part of the site its image is built from.

The same dictionaries feed doit's `config_changed`, so a task reruns when, and only
when, something its files are made from has changed.
"""

from __future__ import annotations

from tasks.keyfiles import params_path
from tasks.recipes.root import CGD_PARAMS_DIR
from tasks.site import DomU, Layout, Site

LOCAL_DEVICE = "xbd2a"
LOCAL_DISK = "xbd2d"  # the whole disk: the raw partition on amd64 and i386
# An encrypted local.img opened in the domU: cgd1 on the whole disk (cgd0 is swap).
LOCAL_CGD = "cgd1"


def root_context(site: Site) -> dict[str, object]:
    return {
        "kernel": site.root.kernel.name,
        "local_device": LOCAL_DEVICE,
        "local_fs_types": sorted({domu.local.fs for domu in site.domus}),
        "local_cgd": LOCAL_CGD,
        "local_disk": LOCAL_DISK,
        "encrypted_locals": sorted(d.name for d in site.domus if d.local.encrypt == "domu"),
        "cgd_params_dir": f"/{CGD_PARAMS_DIR}",
    }


def local_context(site: Site, domu: DomU) -> dict[str, object]:
    return {
        "name": domu.name,
        "root": {"fs": site.root.fs},
        "local": {
            "fs": domu.local.fs,
            "size": domu.local.size,
            "encrypt": domu.local.encrypt,
            "device": f"{LOCAL_CGD}a" if domu.local.encrypt == "domu" else LOCAL_DEVICE,
        },
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
        # the dom0 opens an encrypted local.img through the hotplug script, with the key
        # kept in the key directory (the xl config names the file, never the key)
        "local_cgd": {
            "script": str(layout.hotplug_script),
            "params": str(params_path(site.keys, domu.name)),
        }
        if domu.local.encrypt == "dom0"
        else None,
    }
