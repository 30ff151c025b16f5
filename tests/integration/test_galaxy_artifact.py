"""The Galaxy artifact: `ansible-galaxy collection build` ships the collection and nothing of the
development state around it, and the installed artifact works on its own.

The installed collection is used from an empty temporary collections path with a blank ansible.cfg
and a working directory outside the checkout, so nothing resolves through the checkout's
collections/ symlink: every plugin renders with ansible-doc, every role's argument specs render, and
the collection playbooks (FQCN) pass --syntax-check. community.crypto, ansible.posix and
containers.podman come from the `ansible` package (there is no Galaxy server here: --no-deps).
"""

import glob
import json
import os
import shutil
import subprocess
import tarfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Development state that appears in a working checkout and must never be shipped, planted into a copy
# of the checkout (relative path -> content).
PLANTED = {
    ".venv/bin/python": "",
    ".cache/apt.stamp": "",
    ".pytest_cache/v/cache/lastfailed": "{}",
    ".ruff_cache/CACHEDIR.TAG": "",
    ".ansible/collections/x": "",
    "lab/cache/ikemesh-node.tar": "image",
    "lab/cache/vm/id_ed25519": "private key",
    "plugins/filter/__pycache__/mesh.cpython-311.pyc": "",
    "inventories/lab/ikemesh_allocations.json": "{}",
    "inventories/lab/ikemesh_pki/root.key": "private key",
    "inventories/lab/ikemesh_rendered/n1/swanctl/conf.d/ikemesh-n2.conf": "",
    "molecule/default/inventory/ikemesh_pki/intermediate.key": "private key",
    "molecule/default/inventory/ikemesh_allocations.json": "{}",
    "benchmarks/.benchmarks/Linux-CPython-3.11-64bit/0001_x.json": "{}",
    "ikemesh-mesh-0.0.1.tar.gz": "",
    ".hypothesis/examples/abc": "",
    "tests/unit/.hypothesis/constants/abc": "",
    # Where the state lands when there is no inventory directory (playbook_dir fallback).
    "playbooks/ikemesh_pki/ca/root.key": "private key",
    "playbooks/ikemesh_allocations.json": "{}",
}

# What the artifact may hold at its top level: the collection, its docs and its sanity ignores. The
# labs, inventories, scenarios, benchmarks, tools, unit/integration/lab tests and every cache stay out
# (galaxy.yml build_ignore).
TOP_LEVEL = {
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "changelogs",
    "docs",
    "execution-environment.yml",
    "meta",
    "playbooks",
    "plugins",
    "roles",
    "site.yml",
    "tests",
}
FORBIDDEN_PARTS = {".venv", ".cache", ".git", ".ansible", ".pytest_cache", ".ruff_cache", "__pycache__"}
FORBIDDEN_PARTS |= {".benchmarks", ".hypothesis"}
FORBIDDEN_NAMES = {"ikemesh_pki", "ikemesh_allocations.json", "ikemesh_rendered"}


def _clean_env(home, collections_path, config):
    """An environment with no ANSIBLE_* setting from the caller (the Makefile exports ANSIBLE_CONFIG)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(
        HOME=str(home),
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    return env


def _run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _build(source, output):
    _run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(output), str(source)], cwd=str(output)
    )
    (tarball,) = glob.glob(os.path.join(str(output), "ikemesh-mesh-*.tar.gz"))
    return tarball


def _members(tarball):
    with tarfile.open(tarball) as archive:
        return sorted(member.name for member in archive.getmembers())


def _assert_clean(members):
    for name in members:
        parts = name.split("/")
        assert not (FORBIDDEN_PARTS & set(parts)), f"development state shipped: {name}"
        assert not (FORBIDDEN_NAMES & set(parts)), f"controller state (keys, ledgers) shipped: {name}"
        assert not name.endswith((".tar.gz", ".pyc")), f"build output shipped: {name}"
        assert parts[0] in TOP_LEVEL, f"not part of the collection: {name}"
        assert parts[0] != "tests" or parts[1:2] in ([], ["sanity"]), f"only tests/sanity ships: {name}"


@pytest.fixture(scope="module")
def version():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["version"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """The artifact built from this checkout, as it is."""
    return _build(ROOT, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory, artifact):
    """The artifact installed into an empty collections path; returns (env, workdir, collection dir)."""
    base = tmp_path_factory.mktemp("installed")
    collections = base / "collections"
    collections.mkdir()
    (base / "home").mkdir()
    config = base / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = _clean_env(base / "home", collections, config)
    _run(
        ["ansible-galaxy", "collection", "install", "--no-deps", "--force", artifact, "-p", str(collections)],
        cwd=base,
        env=env,
    )
    return env, base, collections / "ansible_collections" / "ikemesh" / "mesh"


def test_artifact_has_the_collection(artifact, version):
    assert os.path.basename(artifact) == f"ikemesh-mesh-{version}.tar.gz"
    members = set(_members(artifact))
    required = {
        "MANIFEST.json",
        "FILES.json",
        "README.md",
        "meta/runtime.yml",
        "docs/roles.md",
        "docs/awx.md",
    }
    required |= {"playbooks/site.yml", "playbooks/verify.yml", "playbooks/render.yml"}
    required |= {"changelogs/changelog.yaml", "changelogs/config.yaml", "tests/sanity/ignore-2.19.txt"}
    for role in os.listdir(os.path.join(ROOT, "roles")):
        required |= {f"roles/{role}/tasks/main.yml", f"roles/{role}/meta/argument_specs.yml"}
    for plugin in glob.glob(os.path.join(ROOT, "plugins", "*", "*.py")) + glob.glob(
        os.path.join(ROOT, "plugins", "filter", "*.yml")
    ):
        required.add(os.path.relpath(plugin, ROOT))
    assert not required - members, f"missing from the artifact: {sorted(required - members)}"
    with tarfile.open(artifact) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["version"] == version
    assert set(manifest["collection_info"]["dependencies"]) == {"community.crypto", "ansible.posix"}


def test_artifact_of_this_checkout_has_no_development_state(artifact):
    _assert_clean(_members(artifact))


def test_build_ignore_leaves_out_planted_state(tmp_path):
    """A checkout full of caches, keys, ledgers and lab images still builds a clean artifact."""
    source = tmp_path / "checkout"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "cache", "__pycache__", ".pytest_cache"),
    )
    for relative, content in PLANTED.items():
        path = source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    members = _members(_build(source, tmp_path))
    _assert_clean(members)
    assert "roles/pki/tasks/main.yml" in members


def test_installed_collection_is_the_only_one(installed):
    env, workdir, path = installed
    listing = json.loads(
        _run(
            ["ansible-galaxy", "collection", "list", "ikemesh.mesh", "--format", "json"], cwd=workdir, env=env
        )
    )
    locations = [location for location, found in listing.items() if "ikemesh.mesh" in found]
    assert locations == [str(path.parent.parent)], listing


def test_every_plugin_renders_with_ansible_doc(installed):
    env, workdir, path = installed
    names = {
        "module": sorted(
            os.path.basename(p)[:-3] for p in glob.glob(str(path / "plugins" / "modules" / "*.py"))
        ),
        "filter": sorted(
            os.path.basename(p)[:-4] for p in glob.glob(str(path / "plugins" / "filter" / "*.yml"))
        ),
        "role": sorted(os.listdir(path / "roles")),
    }
    assert names["module"] and names["filter"] and names["role"]
    for kind, plugins in names.items():
        fqcns = [f"ikemesh.mesh.{name}" for name in plugins]
        docs = json.loads(_run(["ansible-doc", "-t", kind, "--json", *fqcns], cwd=workdir, env=env))
        assert sorted(docs) == fqcns, f"{kind}: {sorted(docs)}"
        for fqcn, doc in docs.items():
            if kind == "role":
                assert doc["entry_points"]["main"]["short_description"], fqcn
            else:
                assert doc["doc"]["short_description"] and doc["doc"]["description"], fqcn
                assert doc["examples"], f"{fqcn} has no EXAMPLES"
                assert kind == "filter" or doc["return"], f"{fqcn} has no RETURN"
                assert doc["doc"]["collection"] == "ikemesh.mesh"
                assert os.path.realpath(doc["doc"]["filename"]).startswith(str(path)), doc["doc"]["filename"]


def test_collection_playbooks_pass_syntax_check_by_fqcn(installed):
    env, workdir, _path = installed
    playbook = workdir / "site.yml"
    playbook.write_text(
        "---\n"
        + "".join(
            f"- name: ikemesh.mesh.{name}\n  ansible.builtin.import_playbook: ikemesh.mesh.{name}\n"
            for name in ("site", "verify", "render")
        )
    )
    inventory = workdir / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"ikemesh_nodes": {"hosts": {"n1": {"ikemesh_underlay_address": "198.51.100.201"}}}},
        )
    )
    output = _run(
        ["ansible-playbook", "--syntax-check", "-i", str(inventory), str(playbook)], cwd=workdir, env=env
    )
    assert "playbook: " in output
