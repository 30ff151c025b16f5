"""execution-environment.yml: `ansible-builder create` (no image build: no registry here) must produce a
build context whose Containerfile installs our pinned ansible-core/ansible-runner and the dependency
files, and whose copies of those files are the ones in meta/."""

import os
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EE_FILE = os.path.join(ROOT, "execution-environment.yml")


def _pinned(name):
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as handle:
        for line in handle:
            if line.split("==")[0].strip().lower() == name:
                return line.strip()
    raise AssertionError(f"{name} is not pinned in requirements.txt")


@pytest.fixture(scope="module")
def ee_spec():
    with open(EE_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    builder = shutil.which("ansible-builder")
    assert builder, "ansible-builder is not installed (requirements.txt)"
    path = tmp_path_factory.mktemp("ee") / "context"
    result = subprocess.run(
        [builder, "create", "--file", EE_FILE, "--context", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return path


def test_schema_v3_and_dependencies_point_at_meta(ee_spec):
    assert ee_spec["version"] == 3
    deps = ee_spec["dependencies"]
    assert deps["python"] == "meta/ee-requirements.txt"
    assert deps["galaxy"] == "meta/ee-collections.yml"
    assert deps["system"] == "meta/ee-bindep.txt"
    # The EE runs the same ansible-core and ansible-runner as the project's tests.
    assert deps["ansible_core"]["package_pip"] == _pinned("ansible-core")
    assert deps["ansible_runner"]["package_pip"] == _pinned("ansible-runner")


def test_collections_cover_galaxy_dependencies(ee_spec):
    with open(os.path.join(ROOT, "meta", "ee-collections.yml"), encoding="utf-8") as handle:
        names = {entry["name"] for entry in yaml.safe_load(handle)["collections"]}
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        galaxy = yaml.safe_load(handle)
    assert set(galaxy["dependencies"]) <= names


def test_python_requirements_match_the_project_pins():
    with open(os.path.join(ROOT, "meta", "ee-requirements.txt"), encoding="utf-8") as handle:
        pins = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    assert pins, "meta/ee-requirements.txt lists nothing"
    for pin in pins:
        assert pin == _pinned(pin.split("==")[0].lower())


def test_context_has_containerfile_and_copies(context):
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert _pinned("ansible-core") in containerfile and _pinned("ansible-runner") in containerfile
    # Collections are installed from the copied requirements.yml, Python and system packages from the
    # copied requirements.txt and bindep.txt.
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert "COPY _build/requirements.txt requirements.txt" in containerfile
    assert "COPY _build/bindep.txt bindep.txt" in containerfile
    for copied, source in (
        ("requirements.yml", "ee-collections.yml"),
        ("requirements.txt", "ee-requirements.txt"),
        ("bindep.txt", "ee-bindep.txt"),
    ):
        with open(os.path.join(ROOT, "meta", source), encoding="utf-8") as handle:
            assert (context / "_build" / copied).read_text() == handle.read(), copied
