"""What `./domus deploy` prepares without any host: the site of each host, its keys, and
generation ids that do not depend on where the inputs are."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import yaml

from tasks.cgd.keyfiles import params_path
from tasks.deploy.restrict import host_inputs, host_keys, restricted_site, site_text
from tasks.site import load_site
from tasks.sources.fingerprint import tree_fingerprint
from tests.sites import REPO, Site, example_site


def hosts_site(tmp_path: Path) -> Site:
    data = example_site()
    data["dom0"] = "netbsd"
    data["hosts"] = {
        "alpha": {"address": "192.0.2.1"},
        "beta": {"address": "192.0.2.2", "dom0": "linux", "output": "/srv/domus", "units": 8},
    }
    data["defaults"]["host"] = "alpha"
    data["domains"]["db1"]["host"] = "beta"
    data["domains"]["db1"]["local"]["encrypt"] = "dom0"
    return Site(tmp_path / "site", data)


def test_each_host_gets_a_site_of_its_domus_with_its_paths(tmp_path: Path) -> None:
    site = load_site(hosts_site(tmp_path).path)
    for host in site.hosts:
        domus = site.domus_on(host.name)
        inputs = host_inputs(site, domus)
        top = PurePosixPath(host.output) / "deploy" / "inputs"
        data = restricted_site(site, host, host.output, f"{host.output}/keys", inputs.to(top))
        # written where the dom0 would find its inputs: here, below a directory of that name
        local = tmp_path / host.name
        for name, path in inputs.paths.items():
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, local / name)
            else:
                shutil.copy2(path, local / name)
        text = site_text(data).replace(str(top), str(local))
        text = text.replace(f"output: {host.output}", f"output: {local / 'out'}")
        (local / "site.yaml").write_text(text)
        there = load_site(local / "site.yaml")
        assert "hosts" not in yaml.safe_load(text)
        assert there.dom0 == host.dom0 and there.blockdev.units == host.units
        expected = [dataclasses.replace(domu, host=None) for domu in domus]
        got = [
            dataclasses.replace(domu, pkg=dataclasses.replace(domu.pkg, source=None))
            for domu in there.domus
        ]
        assert got == [
            dataclasses.replace(domu, pkg=dataclasses.replace(domu.pkg, source=None))
            for domu in expected
        ]
        # each input keeps its name: a generation's id holds it by name and content
        assert [p.name for p in there.domus[0].pkg.source.packages] == [
            p.name for p in domus[0].pkg.source.packages
        ]
    assert [d.name for d in site.domus_on("alpha")] == ["www1", "www2"]


def test_a_host_gets_the_keys_of_its_domus_only(tmp_path: Path) -> None:
    site = load_site(hosts_site(tmp_path).path)
    site.keys.mkdir()
    for name in ("db1", "www1"):
        params_path(site.keys, name).write_text("key\n")
    assert host_keys(site, site.host("beta")) == [params_path(site.keys, "db1")]
    # www1's local.img is not encrypted: a key file of its name is not its key
    assert host_keys(site, site.host("alpha")) == []


def test_a_tree_copied_elsewhere_has_the_same_fingerprint(tmp_path: Path) -> None:
    tree = Path(example_site()["root"]["source"]["tree"])
    copy = tmp_path / "elsewhere" / "root"
    shutil.copytree(tree, copy, symlinks=True)
    for source in [tree, *tree.rglob("*")]:
        shutil.copystat(source, copy / source.relative_to(tree), follow_symlinks=False)
    assert tree_fingerprint(copy) == tree_fingerprint(tree)


def deploy(*words: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tasks.cli", "deploy", *words],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_deploy_needs_hosts_and_names_only_known_ones(tmp_path: Path) -> None:
    plain = Site(tmp_path / "plain")
    plain.data["dom0"] = "netbsd"
    plain.save()
    done = deploy(f"config={plain.path}")
    assert done.returncode == 2
    assert f"domus: {plain.path} has no hosts to deploy to" in done.stderr
    site = hosts_site(tmp_path)
    done = deploy(f"config={site.path}", "gamma")
    assert done.returncode == 2
    assert "no host named gamma" in done.stderr and "the hosts are alpha, beta" in done.stderr


def test_a_domu_whose_old_host_left_the_site_is_not_built_afresh(tmp_path: Path) -> None:
    site = hosts_site(tmp_path)
    for host in site.data["hosts"].values():  # were the check gone, ssh would reach nothing
        host.update(address="127.0.0.1", port=9)
    site.save()
    record = site.output / "deploy" / "placement.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"db1": "omega", "www1": "alpha"}\n')
    done = deploy(f"config={site.path}")
    assert done.returncode == 1, done.stderr
    assert "db1 on omega: last deployed to a host that is no longer in hosts" in done.stderr
    assert f"remove its entry from {record}" in done.stderr
    assert sorted(p.name for p in record.parent.iterdir()) == ["placement.json"]


def test_downloaded_sets_go_to_a_host_as_its_inputs(tmp_path: Path) -> None:
    from tasks.deploy.run import fetch_downloads
    from tasks.deploy.stage import prepare
    from tests.release_server import KERNELS, SETS, Release, serving

    with serving(Release()) as url:
        site_file = hosts_site(tmp_path)
        site_file.data["root"]["source"] = {"sets": [f"{url}{SETS}base.tgz", f"{url}{SETS}etc.tgz"]}
        site_file.data["root"]["kernel"] = f"{url}{KERNELS}netbsd-XEN3_DOMU.gz"
        site_file.save()
        site = load_site(site_file.path)
        fetch_downloads(site)
    prepared = prepare(site, site.host("beta"))
    assert prepared.error is None, prepared.error
    there = yaml.safe_load(prepared.role["site"])
    # the verified copies, under their own names, below the host's deploy/inputs
    sets = there["root"]["source"]["sets"]
    assert [PurePosixPath(path).name for path in sets] == ["base.tgz", "etc.tgz"]
    assert all(path.startswith("/srv/domus/deploy/inputs/") for path in sets)
    assert PurePosixPath(there["root"]["kernel"]).name == "netbsd-XEN3_DOMU"
    assert [g["final"].rsplit("/", 2)[-2] for g in prepared.role["generations"]] == [
        "pkg",
        "root",
    ]
