#!/usr/bin/python
# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: swanctl_initiate
short_description: Bring up strongSwan CHILD SAs that are not established
version_added: "0.1.0"
description:
  - For each requested CHILD SA, checks over charon's VICI socket whether the connection has an
    ESTABLISHED IKE SA with an INSTALLED CHILD SA of that name. If not, initiates it (like
    C(swanctl --initiate --child CHILD --ike IKE)) and retries on failure.
  - Useful after a rollout, when charon tried to start a connection before the peer was configured
    and gave up.
  - Nothing is terminated or changed for CHILD SAs that are already up.
  - The VICI protocol is implemented natively; no extra Python packages are needed on the node.
author: ikemesh developers (@ikemesh)
options:
  children:
    description:
      - The CHILD SAs this node is supposed to initiate.
      - Each item is either a dict with the keys C(ike) (connection name) and C(child) (CHILD SA
        name within that connection), or a plain connection name, meaning the CHILD SA of the same
        name (the convention of this collection's swanctl role).
    type: list
    elements: raw
    required: true
  socket:
    description:
      - Path of charon's VICI unix socket.
    type: path
    default: /var/run/charon.vici
  timeout:
    description:
      - Seconds charon may take for each single initiate before it is considered failed.
    type: int
    default: 20
  retries:
    description:
      - How often a failed initiate is retried, so there are up to O(retries) + 1 attempts per CHILD SA.
      - Before each retry the state is checked again; a CHILD SA that came up meanwhile (for example
        because the peer initiated it) counts as initiated.
    type: int
    default: 3
  delay:
    description:
      - Seconds to wait between attempts.
    type: int
    default: 2
extends_documentation_fragment:
  - ikemesh.mesh.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - In check mode the state is queried and the CHILD SAs that would be initiated are returned in
    RV(initiated), but nothing is initiated.
  - The task fails if any CHILD SA could not be brought up after all attempts; the message names them.
"""

EXAMPLES = r"""
- name: Bring up the mesh tunnels this node initiates
  ikemesh.mesh.swanctl_initiate:
    children:
      - ike: node2
        child: node2
      - ike: node3
        child: node3

- name: The same, with this collection's convention (CHILD SA named like its connection)
  ikemesh.mesh.swanctl_initiate:
    children: [node2, node3]
  register: initiate

- name: Check mode shows what would be initiated
  ikemesh.mesh.swanctl_initiate:
    children: "{{ ikemesh_initiate_children }}"  # e.g. [{"ike": "node2", "child": "node2"}]
    timeout: 30
    retries: 5
  check_mode: true
  register: would_initiate
"""

RETURN = r"""
initiated:
  description:
    - CHILD SAs (as C(IKE/CHILD)) that were brought up by this task. In check mode, the ones that would be
      initiated.
  returned: always
  type: list
  elements: str
  sample: ["node2/node2"]
already_up:
  description: CHILD SAs (as C(IKE/CHILD)) that were already INSTALLED under an ESTABLISHED IKE SA.
  returned: always
  type: list
  elements: str
  sample: ["node3/node3"]
failures:
  description:
    - CHILD SAs that could not be brought up after all attempts.
    - Not called C(failed) because that key is reserved for Ansible's task status.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "node4/node4", "error": "establishing CHILD_SA 'node4' failed", "log": ["..."]}]
  contains:
    name:
      description: C(IKE/CHILD).
      type: str
    error:
      description: Error message of the last attempt.
      type: str
    log:
      description: The last (up to 20) C(control-log) lines charon emitted during the last attempt.
      type: list
      elements: str
"""

import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.ikemesh.mesh.plugins.module_utils.vici import (  # noqa: E402
    DEFAULT_SOCKET,
    ViciCommandError,
    ViciConnectionError,
    ViciError,
    ViciSession,
)

LOG_LINES = 20
# extra socket timeout on top of charon's own initiate timeout
SOCKET_GRACE = 10


def child_name(ike, child):
    return f"{ike}/{child}"


def child_is_up(session, ike, child):
    """True if connection ``ike`` has an ESTABLISHED IKE SA with an INSTALLED CHILD SA named ``child``."""
    for event in session.streamed_request("list-sas", "list-sa", {"ike": ike}):
        sa = event.get(ike)
        if not isinstance(sa, dict) or sa.get("state") != "ESTABLISHED":
            continue
        children = sa.get("child-sas")
        if not isinstance(children, dict):
            continue
        for key, data in children.items():
            if isinstance(data, dict) and data.get("name", key) == child and data.get("state") == "INSTALLED":
                return True
    return False


def _log_lines(events):
    lines = [event.get("msg") for event in events if isinstance(event.get("msg"), str)]
    return lines[-LOG_LINES:]


def initiate_child(session, ike, child, timeout):
    """Initiate one CHILD SA. Returns (ok, error message, control-log lines)."""
    message = {"child": child, "ike": ike, "timeout": str(int(timeout * 1000)), "init-limits": "no"}
    try:
        events = session.streamed_request(
            "initiate", "control-log", message, timeout=timeout + SOCKET_GRACE, check=True
        )
    except ViciCommandError as exc:
        return False, exc.errmsg, _log_lines(exc.events)
    return True, None, _log_lines(events)


def ensure_children(session, children, timeout=20, retries=3, delay=2, check_mode=False, sleep=time.sleep):
    """Bring up ``children`` (list of {"ike", "child"}) through ``session``.

    Returns {"changed", "initiated", "already_up", "failures"}. A socket timeout during an
    initiate counts as a failed attempt (and is retried); other transport errors (charon not
    running, timeouts while listing SAs) are raised as ViciError.
    """
    initiated = []
    already_up = []
    failures = []
    seen = set()
    for entry in children:
        ike = entry["ike"]
        child = entry["child"]
        name = child_name(ike, child)
        if name in seen:
            continue
        seen.add(name)

        if child_is_up(session, ike, child):
            already_up.append(name)
            continue
        if check_mode:
            initiated.append(name)
            continue

        error = None
        log = []
        for attempt in range(max(retries, 0) + 1):
            if attempt:
                sleep(delay)
                if child_is_up(session, ike, child):
                    error = None
                    break
            try:
                ok, error, log = initiate_child(session, ike, child, timeout)
            except ViciConnectionError:
                raise
            except ViciError as exc:  # e.g. socket timeout: reconnect on the next attempt
                ok, error, log = False, str(exc), []
            if ok:
                error = None
                break
            if "not found" in (error or ""):
                # the configuration does not exist, retrying will not help
                break
        if error is None:
            initiated.append(name)
        else:
            failures.append({"name": name, "error": error, "log": log})

    return {
        "changed": bool(initiated),
        "initiated": initiated,
        "already_up": already_up,
        "failures": failures,
    }


def normalize_children(items):
    """Accept {ike, child} dicts or plain connection names (CHILD SA of the same name)."""
    children = []
    for item in items:
        if isinstance(item, str):
            children.append({"ike": item, "child": item})
        elif (
            isinstance(item, dict) and isinstance(item.get("ike"), str) and isinstance(item.get("child"), str)
        ):
            children.append({"ike": item["ike"], "child": item["child"]})
        else:
            raise ValueError(
                f"children: expected a connection name or a dict with ike and child, got {item!r}"
            )
    return children


def main():
    module = AnsibleModule(
        argument_spec=dict(
            children=dict(type="list", elements="raw", required=True),
            socket=dict(type="path", default=DEFAULT_SOCKET),
            timeout=dict(type="int", default=20),
            retries=dict(type="int", default=3),
            delay=dict(type="int", default=2),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        children = normalize_children(params["children"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second")
    try:
        with ViciSession(params["socket"], timeout=params["timeout"] + SOCKET_GRACE) as session:
            result = ensure_children(
                session,
                children,
                timeout=params["timeout"],
                retries=params["retries"],
                delay=params["delay"],
                check_mode=module.check_mode,
            )
    except ViciConnectionError as exc:
        module.fail_json(msg=str(exc))
    except ViciError as exc:
        module.fail_json(msg=f"talking to charon over VICI failed: {exc}")

    if result["failures"]:
        details = "; ".join(f"{item['name']} ({item['error']})" for item in result["failures"])
        module.fail_json(
            msg=f"failed to initiate CHILD SAs to peer(s): {details}",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
