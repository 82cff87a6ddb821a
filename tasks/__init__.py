"""domus: builds NetBSD Xen domU images that share one read-only root (see README.md)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the example site of the repository, whatever directory domus is run from
DEFAULT_SITE = REPO / "config" / "site.yaml"
