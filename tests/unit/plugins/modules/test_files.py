"""The module ikemesh.mesh.files (run in-process), its action's entry checks and the shared sync_file."""

from __future__ import annotations

import os
import stat

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.ikemesh.mesh.plugins.action import files as action
from ansible_collections.ikemesh.mesh.plugins.module_utils.files import ValidationError, sync_file
from ansible_collections.ikemesh.mesh.plugins.modules import files
from ansible_collections.ikemesh.mesh.tests.unit.plugins.modules.module_harness import (
    AnsibleExitJson,
    AnsibleFailJson,
    patch_module_args,
)


def run(module_patches, **args):
    with patch_module_args(args), pytest.raises((AnsibleExitJson, AnsibleFailJson)) as raised:
        files.main()
    return raised.value.args[0]


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_changed_files_only_and_prunes(module_patches, tmp_path):
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "ikemesh-gone.conf").write_text("old peer\n")
    (conf / "ikemesh-b.conf").write_text("b\n")
    (conf / "other.conf").write_text("not ours\n")
    wanted = [
        {"dest": str(conf / "ikemesh-a.conf"), "content": "a\n", "mode": "0640"},
        {"dest": str(conf / "ikemesh-b.conf"), "content": "b\n", "mode": "0640"},  # mode only
        {"dest": str(tmp_path / "new" / "dir" / "unit"), "content": "u\n"},
    ]
    prune = {"path": str(conf), "patterns": ["ikemesh-*.conf"]}
    result = run(module_patches, files=wanted, prune=prune)
    assert result["changed"] is True
    assert result["changed_files"] == [entry["dest"] for entry in wanted]
    assert result["removed"] == [str(conf / "ikemesh-gone.conf")]
    assert sorted(os.listdir(conf)) == ["ikemesh-a.conf", "ikemesh-b.conf", "other.conf"]
    assert (conf / "ikemesh-a.conf").read_text() == "a\n" and mode_of(conf / "ikemesh-a.conf") == 0o640
    assert mode_of(conf / "ikemesh-b.conf") == 0o640
    assert mode_of(tmp_path / "new" / "dir" / "unit") == 0o644
    again = run(module_patches, files=wanted, prune=prune)
    assert again == {"changed": False, "changed_files": [], "removed": []}


def test_check_mode_and_diff_change_nothing(module_patches, tmp_path):
    path = tmp_path / "f.conf"
    path.write_text("one\n")
    gone = tmp_path / "gone"
    gone.write_text("bye\n")
    result = run(
        module_patches,
        files=[{"dest": str(path), "content": "two\n"}, {"dest": str(gone), "state": "absent"}],
        _ansible_check_mode=True,
        _ansible_diff=True,
    )
    assert result["changed_files"] == [str(path)] and result["removed"] == [str(gone)]
    assert result["diff"] == [
        {"before_header": str(path), "after_header": str(path), "before": "one\n", "after": "two\n"},
        {"before_header": str(gone), "after_header": str(gone), "before": "bye\n", "after": ""},
    ]
    assert path.read_text() == "one\n" and gone.exists()


def test_validation_refuses_and_keeps_the_old_file(module_patches, tmp_path):
    path = tmp_path / "rules.nft"
    path.write_text("good\n")
    check = "grep -q good %s"
    result = run(module_patches, files=[{"dest": str(path), "content": "bad\n", "validate": check}])
    assert result["failed"] is True
    assert str(path) in result["msg"] and "refused" in result["msg"]
    assert path.read_text() == "good\n"
    assert os.listdir(tmp_path) == ["rules.nft"]  # no temporary file left
    ok = run(module_patches, files=[{"dest": str(path), "content": "good too\n", "validate": check}])
    assert ok["changed"] is True and path.read_text() == "good too\n"


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"dest": "relative/path", "content": "x"}, "absolute"),
        ({"dest": "/tmp/x"}, "content is required"),
        ({"dest": "/tmp/x", "content": "x", "mode": "rw-r--r--"}, "octal"),
        ({"dest": "/tmp/x", "content": "x", "owner": "no-such-user-ikemesh"}, "no such user"),
        ({"dest": "/tmp/x", "content": "x", "validate": "true"}, "%s"),
    ],
)
def test_bad_entries_fail_with_the_file_named(module_patches, entry, message):
    result = run(module_patches, files=[entry])
    assert result["failed"] is True and message in result["msg"], result


def test_sync_file_owner_and_validate(tmp_path):
    path = str(tmp_path / "f")
    me, group = os.getuid(), os.getgid()
    assert sync_file(path, b"x", 0o600, uid=me, gid=group)
    assert not sync_file(path, b"x", 0o600, uid=me, gid=group)

    def refuse(_tmp):
        raise ValidationError("no")

    with pytest.raises(ValidationError):
        sync_file(path, b"y", 0o600, validate=refuse)
    with open(path, "rb") as handle:
        assert handle.read() == b"x"


@pytest.mark.parametrize(
    "entry, message",
    [
        ("x", "must be a dict"),
        ({"dest": "/a", "content": "x", "bogus": 1}, "unknown keys bogus"),
        ({"content": "x"}, "dest is required"),
        ({"dest": "/a", "content": "x", "src": "f"}, "exactly one of"),
        ({"dest": "/a"}, "exactly one of"),
        ({"dest": "/a", "src": "f", "each": []}, "each needs a template"),
        ({"dest": "/a", "state": "absent", "content": "x"}, "state=absent takes no"),
    ],
)
def test_action_rejects_malformed_entries(entry, message):
    with pytest.raises(AnsibleActionFail, match=message):
        action.check_entry(3, entry)


def test_action_entry_sources():
    assert action.check_entry(1, {"dest": "/a", "template": "t.j2", "each": []}) == "template"
    assert action.check_entry(1, {"dest": "/a", "src": None, "state": "absent"}) is None
    assert action.check_entry(1, {"dest": "/a", "content": ""}) == "content"


def test_each_dest_fills_fields_from_the_element():
    entry = {"dest": "/etc/swanctl/conf.d/ikemesh-{name}.conf", "template": "peer.conf.j2"}
    assert action.each_dest(1, entry, {"name": "hub1", "if_id": 3}) == "/etc/swanctl/conf.d/ikemesh-hub1.conf"
    with pytest.raises(AnsibleActionFail, match=r"files\[1\] \(/etc/swanctl.*no name"):
        action.each_dest(1, entry, {"if_id": 3})
    with pytest.raises(AnsibleActionFail, match="must be dicts"):
        action.each_dest(1, entry, "hub1")
