"""Stand-in for the get-pip.py that ansible-test downloads to bootstrap pip in its sanity venvs.

ansible-test fetches get-pip.py from a CI file server this machine cannot reach. tools/sanity.sh puts
this file in ansible-test's cache under the name it looks for; ansible-test runs it inside each
freshly created (pip-less) virtual environment with the pip install arguments it would give
get-pip.py (for example ``pip==24.2 --no-setuptools --no-wheel``). It bootstraps pip from the
standard library's ensurepip, then installs the requested pip version from the configured index.
"""

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    # In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own environment, and the
    # install below needs the machine's pip configuration (index, certificates).
    status = subprocess.call([sys.executable, "-m", "ensurepip"])
    if status:
        return status
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    return subprocess.call([sys.executable, "-m", "pip", "install", *args])


if __name__ == "__main__":
    sys.exit(main())
