"""`./domus COMMAND ...`: the one command line of domus.

Every command exits 0 when done, 1 when it failed, 2 on a usage error, 75 when another run
holds the run lock, 78 when the site file or its keys are invalid, 130 on Ctrl-C and 143 on
SIGTERM. An error is one `domus: message` line, with a `hint:` below it where there is one.
An unexpected exception is a bug in domus: the operator sees its one line and a hint, not a
traceback (that is for DOMUS_DEBUG=1), because the line is what cron mails and what a
person reads; the traceback helps only whoever fixes the bug, who can ask for it.

Paths on the command line are relative to the caller's directory. The site is
config/site.yaml of the repository unless `config=PATH` (or `--config PATH`) names another.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from tasks import DEFAULT_SITE
from tasks.run.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    DomusError,
    UsageError,
    print_error,
)
from tasks.run.log import DEBUG

if TYPE_CHECKING:  # the site package is loaded only by the commands that need it
    from tasks.site import Site

REPO = Path(__file__).resolve().parents[1]
BUG_HINT = "this is a bug in domus; DOMUS_DEBUG=1 shows where it happened"
EPILOG = """\
The site is config/site.yaml unless config=PATH (or --config PATH) names another; paths are
relative to the directory you run ./domus in.

exit status: 0 done, 1 failed, 2 usage error, 75 another run holds the run lock,
78 invalid site file or keys (nothing was done), 130 Ctrl-C, 143 SIGTERM"""
IMAGE_HELP = "root, pkg:NAME, or pkg (the pkg.img of every domU)"
TARGET_HELP = "root:/etc/rc.conf, root@GEN:/..., pkg:NAME:/bin/..., local:NAME:/etc/..."
# Commands that take the rest of the line as it is, for the program they run.
PASSED_ON = {"build", "test"}
# doit's commands that `./domus build COMMAND` passes on, with what they do for domus; the
# others (auto, strace, tabcompletion) are not domus's: `./domus completion` completes.
DOIT_COMMANDS = {
    "list": "the tasks, each with what it builds",
    "info": "TASK: its inputs and targets, and whether it is up to date",
    "clean": "[TASK...]: remove what the tasks built (all of them without TASK)",
    "forget": "[TASK...]: forget that the tasks are up to date; the next build runs them",
    "ignore": "TASK...: leave the tasks out of builds until `forget`",
    "reset-dep": "record every task as up to date with what it has now",
    "dumpdb": "print the record of what each task was built from",
    "help": "doit's help of one of these: `./domus build help list`",
}
BUILD_EPILOG = "doit commands, `./domus build COMMAND ...`:\n" + "\n".join(
    f"  {name:<10} {summary}" for name, summary in DOIT_COMMANDS.items()
)
SITE_COMMANDS = {
    *("build", "reprovision", "converge", "nightly", "check", "status"),
    *("generations", "activate", "rollback", "pin", "unpin", "gc"),
    "deploy",
}
SITE_COMMANDS |= {"render", "show", "ls", "diff"}  # looking without building (tasks/inspect)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are ours: `domus: message`, a hint, status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"`{self.prog} --help`")


# -- the commands: parse, then call into the capability they name ---------------------------


def build(args: argparse.Namespace) -> int:
    doit_args, reprovision = take_reprovision(args.rest)
    return build_site(args.site, doit_args, reprovision)


def build_arguments(parser: Parser) -> None:
    """What `./domus build --help` shows and the shell completes; the line itself goes to
    doit as it is, through doit_words."""
    parser.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="say what would be built and why (`./domus status`), building nothing",
    )
    parser.add_argument("-j", "--jobs", type=int, metavar="N", help="run N tasks at once")
    parser.add_argument(
        "-c", "--continue", action="store_true", help="go on with other tasks after a failure"
    )
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        nargs="?",
        choices=(0, 1, 2),
        metavar="{0,1,2}",
        help="what tasks print: 0 nothing, 1 errors (default), 2 everything (-v alone)",
    )
    parser.add_argument(
        "tasks",
        nargs="*",
        metavar="TASK",
        help="root, local:NAME, pkg:NAME, swap:NAME, xen:NAME... (`./domus build list`), "
        "or a doit command below; reprovision=NAME,... rebuilds those local.imgs from scratch",
    )


def build_namespace(rest: list[str]) -> argparse.Namespace:
    """`./domus build` with its line as doit takes it; `--dry-run` is `./domus status` of
    the domUs the tasks name (all without tasks)."""
    dry_run, words = doit_words(rest)
    if not dry_run:
        return argparse.Namespace(command="build", run=build, rest=words)
    names = sorted({word.partition(":")[2] for word in words if ":" in word} - {""})
    return argparse.Namespace(command="status", run=status, names=names, json=False, moved=[])


def doit_words(words: Sequence[str]) -> tuple[bool, list[str]]:
    """domus's build options in doit's words: -j N is doit's -n N; -n and --dry-run ask
    for a dry run; -v alone is -v 2; --help is domus's own."""
    dry_run, out = False, []
    rest = iter(words)
    for word in rest:
        if word in ("-h", "--help"):
            command_parser("build").print_help()
            raise SystemExit(EXIT_OK)
        if word in ("-n", "--dry-run"):
            dry_run = True
        elif word in ("-j", "--jobs"):
            out += ["-n", next(rest, "")]
        elif word.startswith(("-j", "--jobs=")):
            out += ["-n", word.removeprefix("-j").removeprefix("--jobs=")]
        elif word in ("-v", "--verbosity"):
            level = next(rest, None)
            if level is not None and not level.isdigit():
                out += [word, "2", level]
            else:
                out += [word, level or "2"]
        elif word in ("auto", "strace", "tabcompletion") and not out:
            raise UsageError(
                f"`./domus build {word}` is not one of domus's",
                hint="`./domus help build` lists the doit commands; "
                "`./domus completion bash|zsh` completes the command line",
            )
        else:
            out.append(word)
    return dry_run, out


def build_site(site: Site, doit_args: Sequence[str], reprovision: set[str] | None = None) -> int:
    from tasks.run.build import prepare
    from tasks.run.doit import run_doit

    return run_doit(prepare(site, reprovision or set(), doit_args), doit_args)


def unchanged_build(args: argparse.Namespace) -> bool:
    """A whole-site build with nothing to do, answered from the record of the last one
    (tasks.run.noop) without loading the site or doit."""
    from tasks.run.noop import unchanged

    if args.command != "build" or args.rest:
        return False
    record = unchanged(args.config)
    if record is None:
        return False
    from tasks.images.private import make_images_private

    if make_images_private(Path(record["output"]) / "images", every_image=False):
        return False  # the record holds the modes they had: doit records the new ones
    print(f"0 built, {record['tasks']} up to date in 0.0 s")
    return True


def status(args: argparse.Namespace) -> int:
    from tasks.status.show import status

    return status(args.config, args.names, args.json, moved=dict(args.moved))


def moved_pair(text: str) -> tuple[str, str]:
    old, equals, new = text.partition("=")
    if not equals or not old.startswith("/") or not new.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not OLD=NEW, two absolute paths")
    return old, new


def status_arguments(parser: Parser) -> None:
    parser.add_argument("--json", action="store_true", help="JSON for scripts, not a table")
    parser.add_argument(
        "--moved",
        action="append",
        default=[],
        type=moved_pair,
        metavar="OLD=NEW",
        help="judge the files last built from below OLD by those below NEW now "
        "(what `deploy --check` runs on a copy of the new inputs)",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="domUs to show (default: all) beside root"
    )


def reprovision(args: argparse.Namespace) -> int:
    return build_site(args.site, [f"local:{name}" for name in args.names], set(args.names))


def converge(args: argparse.Namespace) -> int:
    from tasks.converge.command import run

    return run(args)


def test(args: argparse.Namespace) -> int:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "pytest", *map(from_caller, args.rest)], cwd=REPO, check=False
    )
    # pytest: 2 interrupted, 4 usage; a signal -N is 128+N, as the shell says
    if done.returncode < 0:
        return 128 - done.returncode
    return {0: EXIT_OK, 2: EXIT_INTERRUPTED, 4: EXIT_USAGE}.get(done.returncode, EXIT_FAILED)


def cgd(args: argparse.Namespace) -> int:
    from tasks.cgd import command

    getattr(command, args.cgd)(args)
    return EXIT_OK


def nightly(args: argparse.Namespace) -> int:
    from tasks.nightly.refresh import nightly

    return nightly(args.site)


def check(args: argparse.Namespace) -> int:
    from tasks.checks.run import report, run_checks, select

    findings = run_checks(select(args.site, args.names), every_image=args.all)
    if not args.json:
        return report(findings, sys.stdout)
    import dataclasses
    import json

    rows = [{**dataclasses.asdict(finding), "ok": finding.ok} for finding in findings]
    print(json.dumps(rows, indent=2))
    return EXIT_OK if all(finding.ok for finding in findings) else EXIT_FAILED


def check_arguments(parser: Parser) -> None:
    parser.add_argument("--json", action="store_true", help="every check as JSON, for scripts")
    parser.add_argument(
        "--all",
        action="store_true",
        help="read every image again, also those unchanged since their last check",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="domUs to check (default: all) beside root"
    )


def completion(args: argparse.Namespace) -> int:
    import shtab

    parser = parser_for(None, every=True)
    parser.prog = "domus"  # as installed on PATH; bash also completes ./domus below
    script = shtab.complete(parser, shell=args.shell)
    if args.shell == "bash":
        script = script.rstrip("\n") + "\ncomplete -o bashdefault -F _shtab_domus ./domus\n"
    print(script, end="")
    return EXIT_OK


def version() -> str:
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["version"]


def generations(args: argparse.Namespace) -> int:
    from tasks.generations.cli import Commands

    if getattr(args, "host", None):
        from tasks.deploy.remote import on_host

        if args.command == "activate":
            words = [args.image, args.generation]
        else:
            words = getattr(args, "images", [])  # gc has none
        return on_host(args.site, args.host, [args.command, *words])
    commands = Commands(args.site)
    if args.command == "generations":
        return commands.list(args.images, as_json=args.json)
    if args.command == "activate":
        return commands.activate([args.image, args.generation])
    if args.command == "rollback":
        return commands.rollback(args.images)
    if args.command in ("pin", "unpin"):
        return commands.pin(args.images, args.command == "pin")
    return commands.gc(args.keep)


def render(args: argparse.Namespace) -> int:
    from tasks.inspect.rendering import run

    return run(args.site, args.name, args.template, args.context)


def show(args: argparse.Namespace) -> int:
    from tasks.inspect import show

    if args.command == "ls":
        return show.ls(args.site, args.target, numeric=args.numeric)
    return show.show(args.site, args.target)


def diff(args: argparse.Namespace) -> int:
    from tasks.inspect.diff import run

    return run(args.site, args.image, args.generations)


def init(args: argparse.Namespace) -> int:
    from tasks.init_site import init

    return init(Path(os.path.abspath(args.directory)), args.release, args.arch, args.mirror)


def init_arguments(parser: argparse.ArgumentParser) -> None:
    from tasks.init_site import DEFAULT_MIRROR, KERNELS

    parser.add_argument("directory", metavar="DIR", help="a new (or empty) directory")
    parser.add_argument("--release", required=True, help="the NetBSD release, such as 10.1")
    parser.add_argument("--arch", default="amd64", choices=list(KERNELS))
    parser.add_argument(
        "--mirror", default=DEFAULT_MIRROR, metavar="URL", help=f"default: {DEFAULT_MIRROR}"
    )


def deploy(args: argparse.Namespace) -> int:
    from tasks.deploy.run import deploy

    if args.trust:
        from tasks.deploy.run import select_hosts
        from tasks.deploy.ssh import trust

        trust(args.site, select_hosts(args.site, args.hosts), sys.stdout)
        return EXIT_OK
    if args.check:
        from tasks.deploy.check import check

        return check(args.site, args.hosts)
    return deploy(args.site, args.hosts, serial=args.serial, full=args.full)


# -- their arguments ---------------------------------------------------------------------


def images(parser: argparse.ArgumentParser, nargs: str) -> None:
    parser.add_argument("images", nargs=nargs, metavar="IMAGE", help=IMAGE_HELP)


def host_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        metavar="NAME",
        help="on that dom0 of `hosts`, with the site deployed there (through Ansible)",
    )


def cgd_arguments(parser: argparse.ArgumentParser) -> None:
    from tasks.cgd import params
    from tasks.cgd.ciphers import IV_METHODS
    from tasks.cgd.table import CIPHERS, DEFAULT_CIPHER

    commands = parser.add_subparsers(dest="cgd", required=True, metavar="COMMAND")
    for name, summary in (
        ("encrypt", "encrypt a plain image into what cgd stores on disk"),
        ("decrypt", "decrypt a cgd disk image into the plain image"),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("params", type=Path, help="cgdconfig params file")
        command.add_argument("input", type=Path, metavar="IN")
        command.add_argument("output", type=Path, metavar="OUT")
        command.add_argument(
            "--passphrase-file",
            type=Path,
            metavar="FILE",
            help="passphrase for pkcs5_pbkdf2/sha1 keygens (one trailing newline is dropped); "
            "without it, asked on the terminal",
        )
        command.add_argument(
            "--jobs", type=int, metavar="N", help="worker processes (default: usable CPUs)"
        )
    summary = "write a new params file (mode 0600) with a fresh key or salt"
    generate = commands.add_parser("genparams", help=summary, description=summary)
    generate.add_argument("--algorithm", default=DEFAULT_CIPHER, choices=list(CIPHERS))
    generate.add_argument("--keylength", type=int, help="bits (default: the algorithm's)")
    generate.add_argument("--iv-method", default="encblkno1", choices=list(IV_METHODS))
    generate.add_argument("--verify-method", default="none", choices=list(params.VERIFY_METHODS))
    generate.add_argument("--keygen", default="storedkey", choices=list(params.GENERATED_KEYGENS))
    generate.add_argument(
        "--iterations",
        type=int,
        default=params.DEFAULT_PBKDF2_ITERATIONS,
        help="PBKDF2 iterations for pkcs5_pbkdf2/sha1",
    )
    generate.add_argument("output", type=Path, metavar="OUT")


def converge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the diff of what would change and change nothing; "
        "exit 1 when something would change",
    )
    parser.add_argument("names", nargs="+", metavar="NAME", help="domU names")


Command = tuple[str, Callable[[argparse.Namespace], int], Callable[[Parser], None] | None]
COMMANDS: dict[str, Command] = {
    "build": (
        "build the site, or the tasks named: `./domus build [-n] [-j N] [TASK...]`",
        build,
        build_arguments,
    ),
    "reprovision": (
        "keep each NAME's local.img as a dated backup and build a new one",
        reprovision,
        lambda p: p.add_argument("names", nargs="+", metavar="NAME", help="domU names"),
    ),
    "converge": (
        "rewrite only the managed files of each NAME's local.img",
        converge,
        converge_arguments,
    ),
    "status": (
        "what the next build would do to every image and xl config, and why; "
        "takes no lock, writes nothing",
        status,
        status_arguments,
    ),
    "test": ("run the tests: `./domus test [pytest arguments]`", test, None),
    "cgd": ("cgd(4) images: encrypt, decrypt, genparams", cgd, cgd_arguments),
    "nightly": (
        "for cron: rebuild, activate, check, collect; silent when nothing changed",
        nightly,
        None,
    ),
    "check": (
        "what NetBSD would refuse: every published image (file systems, encrypted ones "
        "opened), the xl configs, the dom0",
        check,
        check_arguments,
    ),
    "generations": (
        "list the generations of root.img and pkg.img (* marks the active one)",
        generations,
        lambda p: (
            images(p, "*"),
            host_option(p),
            p.add_argument("--json", action="store_true", help="JSON for scripts, not a list"),
        ),
    ),
    "activate": (
        "make one generation of an image active",
        generations,
        lambda p: (
            p.add_argument("image", metavar="IMAGE", help="root or pkg:NAME"),
            p.add_argument("generation", metavar="GENERATION", help="an id, or its start"),
            host_option(p),
        ),
    ),
    "rollback": (
        "back to the generation active before this one",
        generations,
        lambda p: (images(p, "+"), host_option(p)),
    ),
    "pin": (
        "builds and nightly runs leave a pinned image alone",
        generations,
        lambda p: (images(p, "+"), host_option(p)),
    ),
    "unpin": (
        "undo pin; names the newest build",
        generations,
        lambda p: (images(p, "+"), host_option(p)),
    ),
    "gc": (
        "retire the outputs of domUs the site no longer has, remove old generations "
        "(keeps generations.keep of each)",
        generations,
        lambda p: (
            host_option(p),
            p.add_argument(
                "--keep",
                action="append",
                default=[],
                metavar="NAME",
                help="leave the outputs of this domU (no longer in the site) as they are; "
                "a deploy keeps those of a domU moving away until its new host has it",
            ),
        ),
    ),
    "render": (
        "what a template renders for a domU, without building",
        render,
        lambda p: (
            p.add_argument("name", metavar="NAME", help="a domU"),
            p.add_argument(
                "template",
                metavar="TEMPLATE",
                help="local/etc/fstab, xen/domu.cfg, ... (or the path it writes: etc/fstab)",
            ),
            p.add_argument(
                "--context", action="store_true", help="the values the template sees, as JSON"
            ),
        ),
    ),
    "show": (
        "print a file of an image, never mounting it: root, root@GEN, pkg:NAME[@GEN], local:NAME",
        show,
        lambda p: p.add_argument("target", metavar="IMAGE:PATH", help=TARGET_HELP),
    ),
    "ls": (
        "list a directory of an image (mode, owner, size, mtime), never mounting it",
        show,
        lambda p: (
            p.add_argument("target", metavar="IMAGE:PATH", help=TARGET_HELP),
            p.add_argument(
                "-n",
                "--numeric",
                action="store_true",
                help="owners and groups as numbers (by default the names of the image's "
                "own etc/passwd and etc/group)",
            ),
        ),
    ),
    "diff": (
        "what differs between two generations of root or pkg:NAME (by default the active "
        "one and the one before), or between local:NAME and the site",
        diff,
        lambda p: (
            p.add_argument("image", metavar="IMAGE", help="root, pkg:NAME or local:NAME"),
            p.add_argument(
                "generations", nargs="*", metavar="GEN", help="from and to: ids or their starts"
            ),
        ),
    ),
    "init": ("write a starter site for a NetBSD release into DIR", init, init_arguments),
    "completion": (
        "print the completion script of a shell: "
        "`./domus completion bash > /etc/bash_completion.d/domus`",
        completion,
        lambda p: p.add_argument("shell", choices=("bash", "zsh")),
    ),
    "deploy": (
        "put each domU on its dom0 of `hosts` with Ansible: ship, build there, activate",
        deploy,
        lambda p: (
            p.add_argument("hosts", nargs="*", metavar="HOST", help="hosts (default: all)"),
            p.add_argument(
                "--check",
                action="store_true",
                help="say what a deploy would do on each host (`./domus status` there of the "
                "new site, sent beside the one the host runs), changing nothing it runs",
            ),
            p.add_argument(
                "--full",
                action="store_true",
                help="run the playbook on every host, even those whose last deploy left them "
                "as this one would",
            ),
            p.add_argument(
                "--trust",
                action="store_true",
                help="read the ssh host key each host offers now, show its fingerprint and "
                "trust it from then on (a host pinned with hosts.NAME.host_key keeps its pin); "
                "deploys nothing",
            ),
            p.add_argument(
                "--serial",
                type=int,
                default=0,
                metavar="N",
                help="a rolling deploy: N hosts at a time, stopping after the first batch in "
                "which a host failed (default: every host at once, each failing alone)",
            ),
        ),
    ),
}


def parser_for(selected: str | None, every: bool = False) -> Parser:
    """The parser of every command; only the selected one gets its arguments (`every`: all
    of them, for completion), so that a build does not import what `cgd` needs to list
    its choices."""
    parser = Parser(
        prog="./domus",
        description="Build and maintain NetBSD Xen domU images that share one read-only root.",
        epilog=EPILOG,
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(
            prog, max_help_position=16, width=100
        ),
    )
    parser.add_argument("--version", action="version", version=f"domus {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (summary, run, arguments) in COMMANDS.items():
        command = commands.add_parser(
            name,
            help=summary,
            description=summary,
            add_help=name != "test",
            epilog=BUILD_EPILOG if name == "build" else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.set_defaults(run=run)
        if name in SITE_COMMANDS:
            command.add_argument(
                "--config", type=Path, metavar="PATH", help="the site file (also config=PATH)"
            )
        if (every or name == selected) and arguments is not None:
            arguments(command)
    helps = commands.add_parser("help", help="this help, or a command's: `./domus help COMMAND`")
    helps.add_argument("topic", nargs="?", metavar="COMMAND", choices=list(COMMANDS))
    return parser


def command_parser(name: str) -> Parser:
    """The parser of command `name`, with its arguments: what `--help` shows."""
    subparsers = parser_for(name)._subparsers
    assert subparsers is not None
    action = next(a for a in subparsers._group_actions if a.dest == "command")
    return action.choices[name]  # type: ignore[index]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    if argv[:1] == ["--version"]:
        print(f"domus {version()}")
        raise SystemExit(EXIT_OK)
    if not argv or argv[0] in ("help", "-h", "--help"):
        topic = argv[1:2]
        if topic and topic[0] not in COMMANDS:
            raise UsageError(f"unknown command '{topic[0]}'", hint="`./domus help` lists them")
        (command_parser(topic[0]) if topic else parser_for(None)).print_help()
        raise SystemExit(EXIT_OK)
    name, rest = argv[0], list(argv[1:])
    if name not in COMMANDS:
        raise UsageError(f"unknown command '{name}'", hint="`./domus help` lists them")
    config = None
    if name in SITE_COMMANDS:
        config, rest = take_config(rest)
    if name == "build":
        args = build_namespace(rest)
    elif name in PASSED_ON:
        args = argparse.Namespace(command=name, run=COMMANDS[name][1], rest=rest)
    else:
        args = parser_for(name).parse_args([name, *rest])
    args.config = Path(os.path.abspath(config)) if config else DEFAULT_SITE
    return args


def take_config(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """`config=PATH`, `--config PATH` or `--config=PATH` anywhere on the line (the last
    one counts), and the rest of the line without it."""
    config, rest = None, []
    words = iter(args)
    for word in words:
        if word.startswith(("config=", "--config=")):
            config = word.partition("=")[2]
        elif word == "--config":
            config = next(words, None)
            if config is None:
                raise UsageError("--config needs a PATH")
        else:
            rest.append(word)
    return config, rest


def take_reprovision(args: Sequence[str]) -> tuple[list[str], set[str]]:
    """doit's `reprovision=NAME,...` variable, as `./domus build` has always taken it."""
    names: set[str] = set()
    rest = []
    for word in args:
        if word.startswith("reprovision="):
            names.update(name for name in word.partition("=")[2].split(",") if name)
        else:
            rest.append(word)
    return rest, names


def from_caller(arg: str) -> str:
    """A path the caller gave, for a program run in the repository: made absolute."""
    path, separator, rest = arg.partition("::")
    if arg.startswith("-") or os.path.isabs(path) or not os.path.exists(path):
        return arg
    return os.path.abspath(path) + separator + rest


# -- one way out -----------------------------------------------------------------------------


def _terminated(signum: int, frame: object) -> None:
    from tasks.blockdev.signals import Terminated

    raise Terminated()


def load(args: argparse.Namespace) -> Site | None:
    """The site of a command that has one, loaded once for the whole command; before the
    command does anything, the plaintext a killed run left (tasks/images/plaintext.py) is
    removed."""
    if args.command not in SITE_COMMANDS or args.command == "status":
        return None  # status loads the site itself, only when it must, and removes nothing
    from tasks.run.leftovers import remove_plaintext_left
    from tasks.site import load_site

    site = load_site(args.config)
    remove_plaintext_left(site.layout)
    return site


def main(argv: Sequence[str] | None = None) -> int:
    from tasks.blockdev.signals import Terminated

    # SIGTERM unwinds like Ctrl-C, so every `finally` (unmount, detach, unlock) runs
    signal.signal(signal.SIGTERM, _terminated)
    try:
        args = parse(list(sys.argv[1:] if argv is None else argv))
        if unchanged_build(args):
            return EXIT_OK
        args.site = load(args)
        return args.run(args)
    except DomusError as error:
        print_error(error)
        return error.status
    except KeyboardInterrupt:
        print("\ndomus: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("domus: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:  # `./domus build list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as error:  # a file the operator named, a full disk, a permission
        print_error(DomusError(str(error)))
        return EXIT_FAILED
    except Exception as error:
        if DEBUG:
            raise
        print_error(DomusError(f"unexpected {type(error).__name__}: {error}", hint=BUG_HINT))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
