"""NetBSD's on-disk formats domus writes or reads itself, each checked against
NetBSD's own code: the DB 1.85 B-tree, superblocks and what fsck accepts of them,
mtree specs."""
