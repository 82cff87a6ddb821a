"""`./domus render NAME TEMPLATE`: what the build writes, without building."""

from __future__ import annotations

import json

import pytest

from tasks.kinds import local
from tasks.site import load_site
from tests.image_reader import ImageReader
from tests.sites import Site
from tests.test_cli import domus


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    site = Site(tmp_path_factory.mktemp("render"))
    site.data["domains"]["www2"]["local"] = {"encrypt": "dom0"}
    site.save()
    return site


def render(site: Site, *args: str):
    return domus("render", *args, f"config={site.path}", cwd=site.directory)


def test_render_is_what_the_build_writes(site):
    before = {name: render(site, name, "xen/domu.cfg").stdout for name in ("www1", "www2", "db1")}
    fstab = render(site, "db1", "local/etc/fstab").stdout
    hotplug = render(site, "www2", "xen/block-domus-cgd").stdout
    assert not site.output.exists()  # rendering built nothing
    site.build()
    for name, text in before.items():
        assert (site.output / "xen" / f"{name}.cfg").read_text() == text
    assert "local_cgd" not in before["www1"] and "block-domus-cgd" in before["www2"]
    assert (site.output / "xen" / "block-domus-cgd").read_text() == hotplug
    assert ImageReader(site.image("db1", "local.img"), "ext2fs").text("etc/fstab") == fstab
    assert "/local\t\text2fs\trw" in fstab


def test_the_path_a_template_writes_names_it_too(site):
    assert (
        render(site, "www1", "/etc/fstab").stdout == render(site, "www1", "local/etc/fstab").stdout
    )
    hooks = render(site, "www1", "etc/rc.pre-hooks")
    assert hooks.returncode == 0 and "xbd2a" in hooks.stdout


def test_context_is_the_one_the_build_renders_with(site):
    done = render(site, "db1", "etc/fstab", "--context")
    assert done.returncode == 0, done.stderr
    loaded = load_site(site.path)
    db1 = next(d for d in loaded.domus if d.name == "db1")
    assert json.loads(done.stdout) == json.loads(json.dumps(local.context(loaded, db1)))


def test_a_site_template_overrides_the_builtin_one(site, tmp_path):
    other = Site(tmp_path / "site")
    templates = other.directory / "templates" / "local" / "etc"
    templates.mkdir(parents=True)
    (templates / "motd").write_text("{{ name }} runs {{ local.fs }}\n")
    other.data["templates"] = "templates"
    other.save()
    done = domus("render", "db1", "etc/motd", f"config={other.path}", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "db1 runs ext2fs\n")


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["nosuch", "etc/fstab"], "no domain named nosuch", "the domains are db1, www1, www2"),
        (["www1", "etc/nosuch"], "no template 'etc/nosuch'", "local/etc/fstab, "),
    ],
)
def test_unknown_names_are_usage_errors_that_list_what_there_is(site, args, message, hint):
    done = render(site, *args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"domus: {message}")
    assert hint in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_template_that_fails_names_its_file_and_line(tmp_path):
    site = Site(tmp_path / "site")
    templates = site.directory / "templates" / "xen"
    templates.mkdir(parents=True)
    (templates / "domu.cfg").write_text("name = {{ name }}\n{{ nosuch }}\n")
    site.data["templates"] = "templates"
    site.save()
    done = domus("render", "www1", "xen/domu.cfg", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"domus: {templates / 'domu.cfg'}:2: 'nosuch' is undefined")


def test_an_invalid_site_exits_78(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["www1"]["memory"] = "lots"
    site.save()
    assert render(site, "www1", "xen/domu.cfg").returncode == 78
