"""Converging an existing local.img in place: only the files domus manages change.

plan: which managed files differ, and their diff; mounted: reading and writing them in a
mounted image (any file system, through tasks.blockdev); debugfs: the same in an ext2fs
image, without mounting or root; local: choosing between the two and running a converge;
__main__: `./domus converge [--dry-run] NAME...`.
"""
