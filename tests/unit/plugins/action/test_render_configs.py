"""Unit tests for the action plugin ikemesh.mesh.render_configs (plugins/action/render_configs.py)."""

from __future__ import annotations

import os
import stat
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.ikemesh.mesh.plugins.action import render_configs as rc
from ansible_collections.ikemesh.mesh.plugins.module_utils import files
from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import build_plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
SWANCTL = os.path.join(ROOT, "roles", "swanctl")
PATTERN = "{node}/swanctl/conf.d/ikemesh-{peer}.conf"


def inventory(names, **common):
    return {
        name: dict({"ikemesh_underlay_address": f"198.18.0.{i + 1}"}, **common)
        for i, name in enumerate(names)
    }


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


# --------------------------------------------------------------------------------------------------
# pure helpers


@pytest.mark.parametrize(
    ("value", "expected"), [("0640", 0o640), ("644", 0o644), (0o600, 0o600), ("0755", 0o755)]
)
def test_parse_mode(value, expected):
    assert files.parse_mode(value) == expected


@pytest.mark.parametrize("value", ["rw-r--r--", "0999", True, None, "", 0o17777])
def test_parse_mode_rejects(value):
    with pytest.raises(ValueError):
        files.parse_mode(value)


@pytest.mark.parametrize(
    ("pattern", "each", "message"),
    [
        ("/abs/{node}/{peer}", "peer", "relative"),
        ("{node}/../{peer}", "peer", "'..'"),
        ("{node}//{peer}", "peer", "empty"),
        ("{node}/x-*.conf", "node", "placeholders"),
        ("{node}/{other}", "node", "placeholders"),
        ("conf/{peer}", "peer", "{node}"),
        ("{node}/x.conf", "peer", "{peer}"),
        ("{node}/{peer}.conf", "node", "only available"),
        ("{node}-{peer}.conf", "peer", "one placeholder"),
        ("", "peer", "non-empty"),
    ],
)
def test_check_pattern_rejects(pattern, each, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")):
        rc.check_pattern(pattern, each)


def test_pattern_glob_and_regex():
    assert rc.pattern_glob(PATTERN) == "*/swanctl/conf.d/ikemesh-*.conf"
    regex = rc.pattern_regex(PATTERN)
    match = regex.match("node1/swanctl/conf.d/ikemesh-node2.conf")
    assert match.group("node") == "node1" and match.group("peer") == "node2"
    assert not regex.match("node1/swanctl/conf.d/other-node2.conf")
    assert not regex.match("a/b/swanctl/conf.d/ikemesh-node2.conf")
    assert rc.pattern_regex("{node}/x.[ab].conf").match("n/x.[ab].conf")  # literal, not a character class


def test_normalise_templates():
    out = rc.normalise_templates([{"src": "peer.conf.j2", "dest": PATTERN, "mode": "0640"}])
    assert out == [{"src": "peer.conf.j2", "dest": PATTERN, "each": "peer", "mode": 0o640}]
    for bad, message in [
        ([], "non-empty"),
        (["x"], "must be a dict"),
        ([{"dest": PATTERN}], "src is required"),
        ([{"src": "a", "dest": PATTERN, "each": "pair"}], "each must be"),
        ([{"src": "a", "dest": PATTERN, "owner": "root"}], "unknown keys owner"),
        ([{"src": "a", "dest": "{node}/a", "each": "node", "mode": "rw"}], "mode"),
    ]:
        with pytest.raises(ValueError, match=message):
            rc.normalise_templates(bad)


def test_planned_files_per_peer_and_node():
    plan = build_plan(inventory(["a", "b", "c"]))
    templates = rc.normalise_templates(
        [{"src": "p.j2", "dest": PATTERN}, {"src": "n.j2", "dest": "{node}/node.conf", "each": "node"}]
    )
    jobs = plan_jobs = rc.planned_files(plan["nodes"], ["b", "a"], templates)
    assert [(rel, t) for rel, t, _n, _p in plan_jobs] == [
        ("b/swanctl/conf.d/ikemesh-a.conf", 0),
        ("b/swanctl/conf.d/ikemesh-c.conf", 0),
        ("b/node.conf", 1),
        ("a/swanctl/conf.d/ikemesh-b.conf", 0),
        ("a/swanctl/conf.d/ikemesh-c.conf", 0),
        ("a/node.conf", 1),
    ]
    assert jobs[0][3]["name"] == "a" and jobs[2][3] is None
    clash = rc.normalise_templates(
        [{"src": "p.j2", "dest": "{node}/x/{peer}"}, {"src": "q", "dest": "{node}/x/{peer}"}]
    )
    with pytest.raises(ValueError, match="same path"):
        rc.planned_files(plan["nodes"], ["a"], clash)


def test_stale_files(tmp_path):
    templates = rc.normalise_templates([{"src": "p.j2", "dest": PATTERN}])
    files = [
        "a/swanctl/conf.d/ikemesh-b.conf",  # planned
        "a/swanctl/conf.d/ikemesh-gone.conf",  # peer left the plan
        "a/swanctl/conf.d/other.conf",  # not ours
        "b/swanctl/conf.d/ikemesh-gone.conf",  # b is planned but not selected: left alone
        "ghost/swanctl/conf.d/ikemesh-a.conf",  # node left the plan
        "ghost/notes.txt",  # not ours
    ]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    stale = rc.stale_files(str(tmp_path), templates, {files[0]}, ["a"], {"a", "b"})
    assert stale == ["a/swanctl/conf.d/ikemesh-gone.conf", "ghost/swanctl/conf.d/ikemesh-a.conf"]
    for rel in stale:
        rc.remove_file(str(tmp_path), rel)
    assert not (tmp_path / "ghost" / "swanctl").exists()  # emptied directories go too
    assert (tmp_path / "ghost" / "notes.txt").exists()
    assert (tmp_path / "a" / "swanctl" / "conf.d" / "other.conf").exists()
    assert rc.stale_files(str(tmp_path / "missing"), templates, set(), ["a"], {"a"}) == []


def test_sync_file(tmp_path):
    path = str(tmp_path / "d" / "e" / "f.conf")
    assert files.sync_file(path, b"one\n", 0o640, check_mode=True)
    assert not os.path.exists(path)
    assert files.sync_file(path, b"one\n", 0o640)
    assert read(path) == b"one\n" and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert not files.sync_file(path, b"one\n", 0o640)
    assert files.sync_file(path, b"one\n", 0o600)  # mode only
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert files.sync_file(path, b"two\n", 0o600, check_mode=True)
    assert read(path) == b"one\n"
    made = set()
    assert files.sync_file(path, b"two\n", 0o600, made_dirs=made)
    assert read(path) == b"two\n"
    assert sorted(os.listdir(os.path.dirname(path))) == ["f.conf"]  # no temporary files left


def test_shape_tracks_flags_and_types():
    assert rc.shape({"a": 1, "b": True}) != rc.shape({"a": 1, "b": False})
    assert rc.shape({"a": 1, "b": True}) == rc.shape({"a": 2, "b": True})
    assert rc.shape({"a": None}) != rc.shape({"a": "x"})
    assert rc.shape(None) == "NoneType"


def test_resolve_role():
    assert rc.resolve_role("ikemesh.mesh.swanctl") == os.path.realpath(SWANCTL) or os.path.samefile(
        rc.resolve_role("ikemesh.mesh.swanctl"), SWANCTL
    )
    assert rc.resolve_role(SWANCTL) == os.path.abspath(SWANCTL)
    for bad in ("swanctl", "ikemesh.mesh.nosuchrole", "nosuch.collection.role"):
        with pytest.raises(ValueError):
            rc.resolve_role(bad)


# --------------------------------------------------------------------------------------------------
# the fast renderer agrees with Ansible's templating


def ansible_render(text, variables):
    templar = Templar(loader=DataLoader(), variables=variables)
    out = templar.template(trust_as_template(text), escape_backslashes=False, overrides=rc.TEMPLATE_OVERRIDES)
    return "" if out is None else str(out)


FAST_CASES = [
    "plain text\n",
    "no newline at the end {{ s }}",
    "two newlines at the end\n\n",
    "{{ s }}\n{{ n }}\n{{ b }}\n{{ none }}|{{ lst }}|{{ dct }}\n",
    "{% if b %}\nyes\n{% else %}\nno\n{% endif %}\n",
    "{% for i in lst %}\n  {{ i }}\n{% endfor %}\n",
    "    {% if b %}indented block{% endif %}\n",
    "{{ lst | join(',') }} {{ lst | map('string') | list }} {{ dct | to_json }}\n",
    "{{ s | regex_replace('a', 'b') }} {{ s | ansible.builtin.regex_replace('b', 'c') }}\n",
    "{{ 'x' if s is match('a.*') else 'y' }} {{ missing | default('dflt') }} {{ dct.k }} {{ dct['k'] }}\n",
    "{{ lst | length }} {{ n * 2 }} {{ '%05d' | format(n) }} {{ s | upper }}\n\n\n",
    "{# comment #}\nafter comment\n",
]


@pytest.mark.parametrize("text", FAST_CASES)
def test_fast_template_matches_ansible(text):
    variables = {"s": "abc", "n": 42, "b": True, "none": None, "lst": [1, None, "x"], "dct": {"k": "v"}}
    from ansible.plugins.loader import filter_loader, test_loader

    tmpl = rc.FastTemplate(text, filter_loader, test_loader)
    assert tmpl.usable
    assert tmpl.render(variables) == ansible_render(text, variables)


@pytest.mark.parametrize(
    "text", ["{{ lookup('env', 'HOME') }}", "{{ hostvars['a'] }}", "{% include 'x.j2' %}", "{{ now() }}"]
)
def test_fast_template_declines_what_needs_ansible(text):
    assert not rc.FastTemplate(text).usable


# --------------------------------------------------------------------------------------------------
# the action end to end (without a play): both renderers, byte for byte, check mode, fallback


class FakeTask:
    def __init__(self, args, check_mode=False):
        self.args = args
        self.check_mode = check_mode
        self.async_val = 0

    def get_search_path(self):
        return []


def make_action(args, check_mode=False):
    loader = DataLoader()
    action = rc.ActionModule(
        task=FakeTask(args, check_mode),
        connection=SimpleNamespace(_shell=SimpleNamespace(tmpdir=None)),
        play_context=SimpleNamespace(check_mode=check_mode),
        loader=loader,
        templar=Templar(loader=loader),
        shared_loader_obj=None,
    )
    return action


def run_action(args, check_mode=False):
    action = make_action(args, check_mode)
    return action._run(action._task.args, {}, {})


def read_tree(root):
    out = {}
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            out[os.path.relpath(path, root)] = read(path)
    return out


@pytest.fixture(scope="module")
def hub_plan():
    names = ["h1", "h2", "s1", "s2", "s3", "s4"]
    return build_plan(inventory(names, ikemesh_topology="hub_spoke"), ["h1", "h2"])


def args_for(plan, dest, **extra):
    args = {
        "plan": plan,
        "dest": str(dest),
        "role": SWANCTL,
        "templates": [{"src": "peer.conf.j2", "dest": PATTERN, "mode": "0640"}],
    }
    args.update(extra)
    return args


def test_fast_and_ansible_renderers_are_byte_identical(tmp_path, hub_plan):
    fast = run_action(args_for(hub_plan, tmp_path / "fast"))
    slow = run_action(args_for(hub_plan, tmp_path / "slow", renderer="ansible"))
    assert fast["renderer"] == "fast" and slow["renderer"] == "ansible"
    assert fast["verified"] >= 4  # hub->hub, hub->spoke, spoke->hub at least
    tree = read_tree(tmp_path / "fast")
    assert tree == read_tree(tmp_path / "slow")
    assert len(tree) == fast["files"] == 2 * 5 + 4 * 2
    text = tree["s1/swanctl/conf.d/ikemesh-h1.conf"].decode()
    peer = next(p for p in hub_plan["nodes"]["s1"]["peers"] if p["name"] == "h1")
    assert f"local_ts = {','.join(peer['local_ts'])}\n" in text
    assert f"remote_ts = {','.join(peer['remote_ts'])}\n" in text
    assert "encap = no\n" in text and "start_action = start\n" in text
    assert f"reqid = {65536 + peer['if_id']}\n" in text
    assert text.startswith("# Ansible managed\n")


def test_renderers_agree_on_a_full_mesh(tmp_path):
    plan = build_plan(inventory(["a", "b", "c", "d"], ikemesh_ipsec_backend="libipsec"))
    fast = run_action(args_for(plan, tmp_path / "fast"))
    run_action(args_for(plan, tmp_path / "slow", renderer="ansible"))
    assert fast["renderer"] == "fast" and fast["files"] == 12
    tree = read_tree(tmp_path / "fast")
    assert tree == read_tree(tmp_path / "slow")
    assert b"encap = yes\n" in tree["b/swanctl/conf.d/ikemesh-a.conf"]
    assert b"start_action = none\n" in tree["b/swanctl/conf.d/ikemesh-a.conf"]


def test_idempotence_check_mode_and_pruning(tmp_path, hub_plan):
    dest = tmp_path / "out"
    first = run_action(args_for(hub_plan, dest))
    assert first["changed"] and len(first["written"]) == first["files"]
    again = run_action(args_for(hub_plan, dest))
    assert not again["changed"] and again["written"] == [] and again["removed"] == []

    stale = dest / "s1" / "swanctl" / "conf.d" / "ikemesh-gone.conf"
    stale.write_text("old")
    edited = dest / "s2" / "swanctl" / "conf.d" / "ikemesh-h2.conf"
    edited.write_text("edited by hand")
    check = run_action(args_for(hub_plan, dest), check_mode=True)
    assert check["changed"]
    assert check["written"] == ["s2/swanctl/conf.d/ikemesh-h2.conf"]
    assert check["removed"] == ["s1/swanctl/conf.d/ikemesh-gone.conf"]
    assert stale.exists() and edited.read_text() == "edited by hand"  # check mode touches nothing

    limited = run_action(args_for(hub_plan, dest, nodes=["s2"]))
    assert limited["written"] == ["s2/swanctl/conf.d/ikemesh-h2.conf"] and limited["removed"] == []
    assert stale.exists()  # s1 was not selected
    fixed = run_action(args_for(hub_plan, dest))
    assert fixed["written"] == [] and fixed["removed"] == ["s1/swanctl/conf.d/ikemesh-gone.conf"]
    assert not stale.exists()


def test_node_variables_override_role_defaults(tmp_path, hub_plan):
    out = run_action(args_for(hub_plan, tmp_path, vars={"ikemesh_swanctl_dpd_delay": "7s"}))
    assert out["files"] == 18
    assert "dpd_delay = 7s\n" in (tmp_path / "h1/swanctl/conf.d/ikemesh-s1.conf").read_text()


@pytest.mark.parametrize("wrong", ["all", "some"])
def test_fast_renderer_falls_back_on_a_difference(tmp_path, hub_plan, monkeypatch, wrong):
    reference = tmp_path / "reference"
    run_action(args_for(hub_plan, reference, renderer="ansible"))
    original = rc.FastTemplate.render

    def broken(self, variables):
        text = original(self, variables)
        node, peer = variables["__ikemesh_node"], variables["__ikemesh_peer"]
        if wrong == "all" or not node["is_hub"] or peer["name"] == "s4":
            return text.replace("revocation = strict", "revocation = none")
        return text

    monkeypatch.setattr(rc.FastTemplate, "render", broken)
    dest = tmp_path / "out"
    # verify=0: only the first file of every new kind is cross-checked. "some": the hubs' files for s4
    # are wrong but not checked (a hub's file for s1 was); the first spoke file is checked and
    # fails, so Ansible renders the rest and re-renders every unchecked file rendered before
    result = run_action(args_for(hub_plan, dest, verify=0))
    assert result["renderer"] == "ansible"
    assert read_tree(dest) == read_tree(reference)


def test_plan_and_template_errors(tmp_path, hub_plan):
    with pytest.raises(ValueError, match="nodes not in the plan: nope"):
        run_action(args_for(hub_plan, tmp_path, nodes=["nope"]))
    with pytest.raises(ValueError, match="plan must be"):
        run_action(args_for({"nodes": []}, tmp_path))
    with pytest.raises(ValueError, match="not found"):
        run_action(args_for(hub_plan, tmp_path, templates=[{"src": "nope.j2", "dest": PATTERN}]))
    bad = tmp_path / "bad.j2"
    bad.write_text("{{ __ikemesh_peer.no_such_key }}\n")
    with pytest.raises(AnsibleActionFail, match="no_such_key"):
        run_action(args_for(hub_plan, tmp_path / "o", templates=[{"src": str(bad), "dest": PATTERN}]))
