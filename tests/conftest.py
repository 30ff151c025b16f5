"""Make the checkout importable as ansible_collections.ikemesh.mesh (as ansible-test does), and run
playbooks from the checkout for the tests that need a real ansible-playbook."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_ROOT = os.path.join(ROOT, "collections")
if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)

_RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def _run_playbook(playbook, inventory, *extra):
    """Run ansible-playbook with the checkout's ansible.cfg, without colour.

    Returns (returncode, output, recap) where recap is [(host, changed, unreachable, failed)], ints.
    """
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    result = subprocess.run(
        ["ansible-playbook", str(playbook), "-i", str(inventory), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    output = result.stdout + result.stderr
    recap = [(host, int(c), int(u), int(f)) for host, c, u, f in _RECAP.findall(output)]
    return result.returncode, output, recap


@pytest.fixture(scope="session")
def run_playbook():
    return _run_playbook
