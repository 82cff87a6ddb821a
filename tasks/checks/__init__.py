"""./domus check: what NetBSD would refuse, found before a domU boots."""

from __future__ import annotations

from dataclasses import dataclass

# the most problems one image reports: a crafted image can have millions
MOST = 20


@dataclass(frozen=True)
class Finding:
    """One check of one thing: `subject` is what was checked (an image, an xl config, the
        dom0), `check` names the rule, `problem` is None when it passed, else what is wrong and
        how to fix it; `warning`: the problem is worth knowing but fails nothing; `skipped`: the
    check was not made, `problem` says why (it fails nothing either)."""

    subject: str
    check: str
    problem: str | None = None
    warning: bool = False
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None or self.warning or self.skipped
