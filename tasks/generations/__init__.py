"""Generations of root.img and of each domU's pkg.img: every build kept, one of them active.

    images/generations/root/<id>/        root.img, kernel, generation.json
    images/generations/pkg/<id>/         pkg.img, generation.json
    images/generations/active/<slot>     -> ../<pool>/<id>: the active generation of a slot
    images/generations/slots/<slot>.json its history and pin
    images/root.img                      -> generations/active/root/root.img
    images/netbsd-XEN3_DOMU              -> generations/active/root/kernel
    images/<domU>/pkg.img                -> ../generations/active/pkg.<domU>/pkg.img

A generation's id is the hash of its inputs record, so a build from inputs an older
generation already has reuses it. The xl configs name the stable paths; activating a
generation replaces the one `active/<slot>` link, so root.img and its kernel always come
from the same generation and no config is rewritten.
"""
