"""Tuning (roles tuning and strongswan), proven on the live nodes.

- charon runs with the planned worker thread count (``swanctl --stats``: charon's default is 16; the
  plan's peer count gives 16 + peers/2), read from /etc/strongswan.d/ikemesh-sizing.conf, which also
  holds the planned IKE SA table size and segments;
- every sysctl the node needs is live (``/proc/sys``) where the system lets it be written, and
  persisted; a key the role skipped must really be unwritable there (containers: kernel-global keys,
  /proc/sys mounted read-only), so nothing was skipped that could have been set.
"""

import re

from ansible_collections.ikemesh.mesh.plugins.module_utils.tuning import charon_tuning, node_sysctls

SIZING = "/etc/strongswan.d/ikemesh-sizing.conf"
PROBE = (
    'for name in {names}; do f="/proc/sys/${{name//.//}}"; '
    'if [ ! -e "$f" ]; then echo "$name absent"; elif [ -w "$f" ]; then echo "$name rw $(cat "$f")"; '
    'else echo "$name ro $(cat "$f")"; fi; done'
)


def test_charon_runs_with_the_planned_sizing(lab_plan, lab_host):
    for name in sorted(lab_plan["nodes"]):
        host = lab_host(name)
        wanted = charon_tuning(len(lab_plan["nodes"][name]["peers"]))
        text = host.file(SIZING).content_string
        for key, value in wanted.items():
            assert re.search(rf"^\s*{key} = {value}$", text, re.M), f"{name}: {key} != {value} in {SIZING}"
        # read at charon's start: the file must predate the running daemon for the live check
        started = host.check_output(
            'date -d "$(systemctl show -p ExecMainStartTimestamp --value strongswan.service)" +%s'
        )
        written = host.check_output(f"stat -c %Y {SIZING}")
        assert int(written) <= int(started), f"{name}: {SIZING} changed after charon started"
        stats = host.check_output("swanctl --stats")
        live = re.search(r"worker threads: (\d+) total", stats)
        assert live and int(live.group(1)) == wanted["threads"], f"{name}: {stats}"


def test_sysctls_are_live_where_writable(lab_plan, lab_host):
    for name in sorted(lab_plan["nodes"]):
        host = lab_host(name)
        wanted = node_sysctls(lab_plan, name)
        probe = host.check_output("bash -c %s", PROBE.format(names=" ".join(e["name"] for e in wanted)))
        live = {e["name"]: e for e in node_sysctls(lab_plan, name, live=probe)}
        persisted = host.run("cat /etc/sysctl.d/60-ikemesh.conf").stdout
        for entry in live.values():
            if entry["writable"]:
                assert entry["current"] == str(entry["value"]), f"{name}: {entry}"
                assert f"{entry['name']}={entry['value']}" in persisted.replace(" ", ""), persisted
            elif entry["required"]:
                assert entry["current"] == str(entry["value"]), f"{name}: required {entry} not in place"
            else:
                # skipped by the role: only because this system really refuses the write
                path = "/proc/sys/" + entry["name"].replace(".", "/")
                result = host.run("sh -c %s", f"echo {entry['current']} > {path}")
                assert result.rc != 0, f"{name}: {entry['name']} was skipped but is writable"
