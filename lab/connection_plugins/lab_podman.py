"""The container lab's connection: containers.podman.podman with pipelining.

The podman plugin runs `podman exec` without `-i`, so it cannot feed a module on stdin and declares no
pipelining: each task then costs five `podman exec` calls (home, mkdir, chmod, run, rm). Passing stdin
makes it one call; site.yml on a converged 3-node lab took 58 s instead of 85 s. Lab only (ansible.cfg
adds this directory); it is not part of the collection.
"""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection

DOCUMENTATION = """
    name: lab_podman
    short_description: Run tasks in the lab's podman containers, with pipelining
    description:
      - containers.podman.podman with C(podman exec -i), so modules are piped to the container's python.
    options:
      remote_addr:
        description: The container's name or ID.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description: The user that runs commands in the container.
        vars:
          - name: ansible_user
      podman_extra_args:
        description: Extra arguments for the podman command line.
        default: ''
        vars:
          - name: ansible_podman_extra_args
      podman_executable:
        description: The podman executable.
        default: podman
        vars:
          - name: ansible_podman_executable
      pipelining:
        description: Pipe modules to the container's python instead of copying them in first.
        type: boolean
        default: true
        vars:
          - name: ansible_pipelining
"""


class Connection(PodmanConnection):
    transport = "lab_podman"
    has_pipelining = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        podman_exec = ["exec", "-i"] if in_data is not None else ["exec"]
        if self.user:
            podman_exec += ["--user", self.user]
        return self._podman(podman_exec, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
