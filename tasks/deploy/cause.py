"""Why a command failed, in a line: the line of its output that says so, which is seldom
the last (rsync ends with its statistics, Ansible with a summary)."""

from __future__ import annotations

# the lines that say why a command failed, where its output has one: looked for before
# falling back to the first line
CAUSES = (
    "No space left on device",
    "Disk quota exceeded",
    "Permission denied",
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "Connection refused",
    "Connection timed out",
    "Connection closed",
    "Could not resolve hostname",
    "No route to host",
    "Network is unreachable",
    "Read-only file system",
    "No such file or directory",
    "command not found",
    "Killed",
)


def cause(output: str) -> str:
    """The line of a failed command's output that says why."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for each in CAUSES:
        for line in lines:
            if each.lower() in line.lower():
                return line
    return lines[0] if lines else "no output"
