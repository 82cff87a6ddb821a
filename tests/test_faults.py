"""Fault injection: nothing is lost under a kill at a random moment, a full disk, hostile site
files or five builds at once.

Each kill trial draws its moment from `random.Random(seed)` over the measured length of the
run, so a failure is replayed by its seed. CI runs a few seeds; DOMUS_FAULT_SEEDS=N runs N
(and N hypothesis examples of hostile site files).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tasks.run.errors import DomusError
from tasks.site import settings as tables
from tasks.site.load import load_site
from tests.conftest import REPO
from tests.image_reader import ImageReader
from tests.mounting import (
    fsck_clean,
    loop_mounted,
    needs_root,
    release_everything_under,
    sha,
)
from tests.netbsd_rules import assert_netbsd_accepts
from tests.sites import Site
from tests.test_converge import SITE_LINE, change_site, ext2_site, plant_domu_state
from tests.test_hostile_input import fill, tmpfs

SEEDS = int(os.environ.get("DOMUS_FAULT_SEEDS", "0"))
LEFTOVER = re.compile(r"\.(plain|partial|part|domus-new)$")
# what plant_domu_state leaves in a local.img, owned by the domU alone
PLANTED = ("var/db/app/data", "etc/ssh_host_ed25519_key", "var/log/messages")


def seeds(default: int) -> list[int]:
    return list(range(SEEDS or default))


def domus(*args: str, site: Site) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "domus"), *args, f"config={site.path}"], capture_output=True, text=True
    )


def start(*args: str, site: Site) -> subprocess.Popen:
    return subprocess.Popen(
        [str(REPO / "domus"), *args, f"config={site.path}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the kill reaches every child (makefs, debugfs, mount)
    )


def kill_after(process: subprocess.Popen, delay: float) -> bool:
    """SIGKILL `process` and its children after `delay` seconds; False if it ended first."""
    time.sleep(delay)
    alive = process.poll() is None
    if alive:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return alive


def timed(*args: str, site: Site) -> float:
    began = time.monotonic()
    done = domus(*args, site=site)
    assert done.returncode == 0, done.stdout + done.stderr
    return time.monotonic() - began


# -- what must hold after any fault ----------------------------------------------------------


def assert_every_image_accepted(site: Site) -> None:
    images = site.output / "images"
    assert_netbsd_accepts(images / "root.img", site.data["root"]["fs"])
    for name in site.data["domains"]:
        local = (site.data["domains"][name] or {}).get("local") or site.data["defaults"]["local"]
        assert_netbsd_accepts(images / name / "local.img", local["fs"])
        if (images / name / "pkg.img").exists():
            assert_netbsd_accepts(images / name / "pkg.img", "ffs")


def planted(image: Path) -> dict[str, tuple[bytes, object]]:
    reader = ImageReader(image, "ext2fs")
    return {path: (reader.read(path), reader.stat(path)) for path in PLANTED}


def assert_nothing_left(site: Site) -> None:
    left = [p for p in site.output.rglob("*") if LEFTOVER.search(p.name)]
    assert left == [], left
    again = domus("build", site=site)
    assert again.returncode == 0, again.stdout + again.stderr  # 75 would be a lock left held
    assert again.stdout.startswith("0 built"), again.stdout


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path):
    yield
    release_everything_under(tmp_path)


@pytest.fixture
def planted_site(tmp_path) -> tuple[Site, dict]:
    """The example site with ext2fs local images, each holding its domU's own files."""
    site = ext2_site(tmp_path / "site")
    before = {}
    for name in site.data["domains"]:
        image = site.image(name, "local.img")
        with loop_mounted(image) as top:
            plant_domu_state(top)
        before[name] = planted(image)
    return site, before


def change_inputs(site: Site, token: str, converge: bool = True) -> None:
    """A new root generation and (`converge`) a converge of every local.img."""
    templates = site.directory / "templates"
    (templates / "root" / "etc").mkdir(parents=True, exist_ok=True)
    builtin = (REPO / "templates" / "root" / "etc" / "rc.pre-hooks").read_text()
    (templates / "root" / "etc" / "rc.pre-hooks").write_text(f"{builtin}# {token}\n")
    site.data["templates"] = "templates"
    for entry in site.data["domains"].values() if converge else ():
        entry.setdefault("rc_conf", {})["domus_trial"] = token
    site.save()


# -- 1. SIGKILL at a random moment --------------------------------------------------------


@needs_root
@pytest.mark.parametrize("command", ["build", "nightly"])
def test_a_kill_at_any_moment_loses_nothing(planted_site, command):
    site, before = planted_site
    change_inputs(site, "measure")
    duration = timed(command, site=site)
    killed = 0
    for seed in seeds(4):
        change_inputs(site, f"trial {seed}")
        delay = random.Random(seed).uniform(0, duration)
        killed += kill_after(start(command, site=site), delay)
        rerun = domus("build", site=site)
        assert rerun.returncode == 0, f"seed {seed}: {rerun.stdout}{rerun.stderr}"
        assert "Traceback" not in rerun.stdout + rerun.stderr
        assert_every_image_accepted(site)
        for name, files in before.items():
            assert planted(site.image(name, "local.img")) == files, f"seed {seed}: {name}"
            rc_conf = ImageReader(site.image(name, "local.img"), "ext2fs").text("etc/rc.conf")
            assert f'domus_trial="trial {seed}"' in rc_conf, f"seed {seed}: {name}"
        assert_nothing_left(site)
    print(f"{command}: {len(seeds(4))} trials, {killed} killed before the end, none lost")


def converged(image: Path, files: dict) -> bool:
    reader = ImageReader(image, "ext2fs")
    rc_conf, fstab = reader.text("etc/rc.conf"), reader.text("etc/fstab")
    assert planted(image) == files
    return (
        "httpd=NO\n" in rc_conf and fstab.endswith(SITE_LINE) and "etc/motd.domus" in reader.paths()
    )


@needs_root
@pytest.mark.parametrize(
    "backend",
    [
        "none",
        "auto",
    ],
    ids=["debugfs", "mounted"],
)
def test_a_kill_mid_converge_leaves_the_image_before_or_after_never_between(tmp_path, backend):
    site = ext2_site(tmp_path / "site", names=("www1",), mount=backend != "none", backend=backend)
    image = site.image("www1", "local.img")
    with loop_mounted(image) as top:
        plant_domu_state(top)
    files = planted(image)
    pristine = tmp_path / "pristine.img"
    shutil.copyfile(image, pristine)
    old = sha(image)
    change_site(site, "www1")
    duration = timed("converge", "www1", site=site)
    assert converged(image, files)
    outcomes: dict[int, str] = {}
    for seed in seeds(4):
        shutil.copyfile(pristine, image)
        kill_after(start("converge", "www1", site=site), random.Random(seed).uniform(0, duration))
        if sha(image) == old:
            outcomes[seed] = "before"
        elif converged(image, files):
            assert_netbsd_accepts(image, "ext2fs")
            outcomes[seed] = "after"
        else:
            outcomes[seed] = "between"
        rerun = domus("converge", "www1", site=site)  # cleans up what the kill left
        assert rerun.returncode == 0, f"seed {seed}: {rerun.stdout}{rerun.stderr}"
        assert converged(image, files) and fsck_clean(image)
        assert_netbsd_accepts(image, "ext2fs")
    print(f"converge kills ({backend}): {outcomes}")
    between = [seed for seed, outcome in outcomes.items() if outcome == "between"]
    assert between == [], f"half-converged local.img after a kill at seeds {between}"
    print(f"converge kills ({backend}): {outcomes}")


# -- 2. a full disk ---------------------------------------------------------------------------


@needs_root
def test_a_full_output_disk_fails_in_one_line_and_keeps_the_published_images(tmp_path):
    site = Site(tmp_path / "site")
    with tmpfs(site.output, "256m") as output:
        assert domus("build", site=site).returncode == 0
        images = sorted(p for p in (output / "images").rglob("*.img") if not p.is_symlink())
        published = {p: sha(p) for p in images}
        change_inputs(site, "full disk", converge=False)
        fill(output)
        with open(output / "filler", "r+b") as filler:  # room for small files, not an image
            filler.truncate(filler.seek(0, os.SEEK_END) - 2 * 2**20)
        done = domus("build", site=site)
        said = done.stdout + done.stderr
        assert done.returncode == 1, said
        assert "Traceback" not in said
        full = [line for line in said.splitlines() if "the disk is full" in line]
        assert full, said
        assert {p: sha(p) for p in images} == published
        (output / "filler").unlink()
        again = domus("build", site=site)
        assert again.returncode == 0, again.stdout + again.stderr
        assert_every_image_accepted(site)
        assert [p for p in output.rglob("*") if LEFTOVER.search(p.name)] == []


# -- 3. hostile site files -------------------------------------------------------------------


def every_setting() -> list[tuple[str, str]]:
    """(where, dotted key) of every setting in the tables: new settings are covered too."""
    return [("site", key) for key in tables.SITE.settings] + [
        (where, key) for key in tables.DOMAIN.settings for where in ("defaults", "domain")
    ]


HOSTILE_STRINGS = [
    *("", " ", "0", "-1", "16m", "0m", "1k", "-16m", "99999999999999t", "1e9", "0x10"),
    *("ffs", "ext2fs", "none", "auto", "aes-cbc", "YES", "NO", "null", "~"),
    *("a,b", "dir,with,commas", 'q"uote', "it's", "new\nline", "tab\there", "ünïcödé/ß"),
    *("../outside", "./", "//", "{{ 7 * 7 }}", "{% raw %}", "$(touch pwned)", "`id`"),
    *("bridge=bridge0", "inet 192.0.2.1", "\x00", "\u202e", "-" * 300),
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 31, 32, 64, 65, 2**31, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def put(data: dict, dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    data[last] = value


def mapping(data: dict, key: str) -> dict:
    """data[key] as a mapping, made one if a hostile value left something else there."""
    if not isinstance(data.get(key), dict):
        data[key] = {}
    return data[key]


@st.composite
def hostile_sites(draw) -> dict:
    """The example site with some settings replaced by hostile or valid-looking values, and
    perhaps an unknown key beside a real one."""
    data = _example()
    for where, key in draw(st.lists(st.sampled_from(every_setting()), min_size=1, max_size=3)):
        value = draw(VALUES)
        if where == "site":
            put(data, key, value)
        elif where == "defaults":
            put(mapping(data, "defaults"), key, value)
        else:
            domains = mapping(data, "domains")
            name = draw(st.sampled_from(sorted(domains) or ["www1"]))
            put(mapping(domains, name), key, value)
        if draw(st.booleans()):
            typo = draw(st.sampled_from([key + "s", key.upper(), key.replace(".", "_"), "_" + key]))
            put(data if where == "site" else mapping(data, "defaults"), typo, draw(SCALARS))
    return data


def _example() -> dict:
    from tests.sites import example_site

    return example_site()


def listing(directory: Path, written: list[Path]) -> dict[str, tuple[int, int]]:
    """Every file below `directory` but those a build writes (its output, locks and keys
    directories), with size and mtime."""
    found = {}
    for path in directory.rglob("*"):
        if any(path == top or top in path.parents for top in written):
            continue
        st_ = path.lstat()
        found[str(path)] = (st_.st_size, st_.st_mtime_ns)
    return found


HAS_LINE = re.compile(r"^domus: \S.*:\d+: ", re.M)


def check_load(path: Path) -> list[Path] | None:
    """The directories a build of the site at `path` writes; None where it is refused, as it
    must be: status 78 with the file and line of each problem."""
    try:
        site = load_site(path)
        event("valid")
        return [site.output, site.locks, site.keys]
    except DomusError as error:
        event("refused (78)")
        assert error.status == 78, error
        assert re.search(r"\S:\d+: ", str(error)), str(error)
        return None


@settings(
    max_examples=SEEDS or 100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=hostile_sites())
def test_a_hostile_site_file_loads_or_is_refused_by_file_and_line(tmp_path, data):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    check_load(path)


@settings(
    max_examples=max(5, SEEDS // 10),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=hostile_sites())
def test_a_hostile_site_file_builds_or_exits_78_and_writes_only_its_output(tmp_path, data):
    directory = tmp_path / f"site-{time.monotonic_ns()}"
    directory.mkdir()
    path = directory / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    written = check_load(path)
    before = listing(directory, written or [])
    done = subprocess.run(
        [str(REPO / "domus"), "build", f"config={path}"],
        capture_output=True,
        text=True,
        cwd=directory,
    )
    said = done.stdout + done.stderr
    assert "Traceback" not in said
    if written is None:
        assert done.returncode == 78, said
        assert HAS_LINE.search(done.stderr), said
    else:
        # a valid site can still name a source that cannot be built: each failed task then
        # says why on its line (exit 1), as any build failure does
        assert done.returncode in (0, 1), said
        failed = re.findall(r"^FAILED +\S+ +(.*)$", done.stdout, re.M)
        assert (done.returncode == 1) == bool(failed), said
        assert all(failed), said
    assert listing(directory, written or []) == before
    release_everything_under(directory)
    shutil.rmtree(directory, ignore_errors=True)


# -- 4. five builds at once -----------------------------------------------------------------


def test_five_builds_at_once_one_builds_the_others_refuse_or_find_nothing_to_do(tmp_path):
    site = Site(tmp_path / "site")
    command = [str(REPO / "domus"), "build", f"config={site.path}"]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(5)
    ]
    results = [(run.wait(), *run.communicate()) for run in runs]
    built = [r for r in results if r[0] == 0 and not r[1].startswith("0 built")]
    refused = [r for r in results if r[0] == 75]
    idle = [r for r in results if r[0] == 0 and r[1].startswith("0 built")]
    assert len(built) == 1, results
    assert len(built) + len(refused) + len(idle) == 5, results
    for _, _, err in refused:
        assert "another run holds the lock" in err, err
    assert_every_image_accepted(site)
