#!/usr/bin/env bash
# ansible-test sanity, locally (no containers), on exactly what ships: ansible-test refuses the
# checkout's symlinked collections/ansible_collections/ikemesh/mesh, so the collection is built with
# `ansible-galaxy collection build` (galaxy.yml's build_ignore leaves out caches, lab state and the
# development-only trees) and the artifact is unpacked into a temporary
# ansible_collections/ikemesh/mesh where the tests run. Extra arguments go to ansible-test, for
# example: tools/sanity.sh --test pylint
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
work="$(mktemp -d "${TMPDIR:-/tmp}/ikemesh-sanity.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/ikemesh/mesh"
mkdir -p "$dest"
ansible-galaxy collection build --output-path "$work/dist" "$root" >/dev/null
tar -C "$dest" -xzf "$work"/dist/ikemesh-mesh-*.tar.gz
# ansible-test lists a collection's files through git when it is in a repository: make it one.
(cd "$dest" && git init -q && git add -A)
# ansible-test bootstraps pip in its per-test venvs with a get-pip.py it downloads from a server this
# machine cannot reach: give it tools/get_pip_offline.py under the cached name it looks for.
pipver="$("$python" -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
from ansible_test._internal.host_configs import NativePythonConfig as P
print(g(P(version="'"$pyver"'", path=""))["pip"])')"
cache="$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
mkdir -p "$(dirname "$cache")"
cmp -s "$root/tools/get_pip_offline.py" "$cache" || cp "$root/tools/get_pip_offline.py" "$cache"
cd "$dest"
ansible-test sanity --local --python "$pyver" --color no "$@"
