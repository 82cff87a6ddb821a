"""Hostile templates and bad input: a one-line error and the right exit status, never a
traceback, and nothing of the input in an image."""

from __future__ import annotations

import os
from pathlib import Path

from tests.sites import Site
from tests.test_cli import domus

PAYLOAD = "{{ cycler.__init__.__globals__.os.popen('id').read() }}\n"


def site_with_templates(tmp_path: Path) -> tuple[Site, Path]:
    site = Site(tmp_path / "site")
    templates = site.directory / "templates"
    site.data["templates"] = "templates"
    site.save()
    return site, templates


def output_bytes(site: Site) -> bytes:
    return b"".join(p.read_bytes() for p in site.output.rglob("*") if p.is_file())


def test_a_template_cannot_run_a_command(tmp_path):
    site, templates = site_with_templates(tmp_path)
    for group in ("root", "local"):
        (templates / group / "etc").mkdir(parents=True)
        (templates / group / "etc" / "motd").write_text(f"id: {PAYLOAD}")
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert f"{templates / 'root' / 'etc' / 'motd'}: access to attribute '__init__'" in done.stdout
    assert "is unsafe" in done.stdout
    assert b"uid=" not in output_bytes(site)


def test_a_template_cannot_read_a_host_file(tmp_path):
    site, templates = site_with_templates(tmp_path)
    (templates / "root" / "etc").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    (templates / "root" / "etc" / "motd").write_text(
        f"{{{{ lipsum.__globals__.__builtins__.open('{secret}').read() }}}}\n"
    )
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 1
    assert "is unsafe" in done.stdout
    assert b"hunter2" not in output_bytes(site)


def test_a_symlink_out_of_the_template_directory_is_refused(tmp_path):
    site, templates = site_with_templates(tmp_path)
    (templates / "root" / "etc").mkdir(parents=True)
    link = templates / "root" / "etc" / "shadow"
    link.symlink_to("/etc/shadow")
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    assert f"{link}: a symlink leads out of the template directory" in out
    assert not list(site.output.rglob("root.img"))


def test_a_symlinked_directory_out_of_the_template_directory_is_refused(tmp_path):
    site, templates = site_with_templates(tmp_path)
    (templates / "local").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "motd").write_text("outside\n")
    (templates / "local" / "etc").symlink_to(outside)
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode != 0
    assert f"{templates / 'local' / 'etc'}: a symlink leads out" in done.stdout + done.stderr
    assert b"outside\n" not in output_bytes(site)


def test_a_symlink_inside_the_template_directory_is_followed(tmp_path):
    site, templates = site_with_templates(tmp_path)
    (templates / "root" / "etc").mkdir(parents=True)
    (templates / "root" / "etc" / "motd").write_text("kernel {{ kernel }}\n")
    os.symlink("motd", templates / "root" / "etc" / "motd.copy")
    done = domus("build", f"config={site.path}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
