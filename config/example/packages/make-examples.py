"""Regenerate the example site's pkgsrc binary packages in this directory.

The two packages are written for domus, so the example site's pkg.img has something to install
and `pkg_info` in a domU has something to list: domus-motd prints a message of the day, and
domus-hello, which depends on it, greets the user and then prints it. They are built with the
tests' helper (tests/pkgsrc_fixture.py), deterministically: running this again rewrites the
same bytes.

    .venv/bin/python config/example/packages/make-examples.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "tests"))

from pkgsrc_fixture import Symlink, make_package  # noqa: E402

MOTD = b"""\
This NetBSD domU was built by domus.
Its root file system is shared and read-only; its own state lives on /local.
"""

MOTD_SCRIPT = b"""\
#!/bin/sh
# Print the message of the day that domus-motd installs, then the site's additions.
dir=/usr/pkg/share/domus-motd
cat "$dir/motd"
for part in "$dir"/motd.d/*; do
	[ -f "$part" ] && cat "$part"
done
exit 0
"""

HELLO_SCRIPT = b"""\
#!/bin/sh
# Greet the user, then show the message of the day (from domus-motd).
echo "Hello from $(hostname), ${USER:-stranger}."
exec /usr/pkg/bin/domus-motd
"""


def main(out: Path = HERE) -> list[Path]:
    motd = out / "domus-motd-1.0.tgz"
    make_package(
        motd,
        "domus-motd-1.0",
        {
            "bin/domus-motd": (MOTD_SCRIPT, 0o755),
            "share/domus-motd/motd": MOTD,
            "share/doc/domus-motd/motd": Symlink("../../domus-motd/motd"),
        },
        comment="Message of the day for domus domUs",
        desc="Prints a short message of the day describing a domus-built domU,\n"
        "followed by the files a site puts in share/domus-motd/motd.d.\n",
        pkgdirs=["share/domus-motd/motd.d"],
    )
    hello = out / "domus-hello-1.0.tgz"
    make_package(
        hello,
        "domus-hello-1.0",
        {"bin/domus-hello": (HELLO_SCRIPT, 0o755)},
        depends=["domus-motd>=1.0"],
        comment="Greeting for domus domUs",
        desc="Greets the user, then prints the message of the day from domus-motd.\n",
    )
    return [motd, hello]


if __name__ == "__main__":
    for path in main():
        print(path)
