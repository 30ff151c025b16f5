"""docs/roles.md is generated from the roles' meta/argument_specs.yml (tools/role_docs.py, `make docs`)
and cannot drift from them; every option of every role has a description."""

import importlib.util
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(name for name in os.listdir(os.path.join(ROOT, "roles")) if not name.startswith("."))


def _load_tool():
    spec = importlib.util.spec_from_file_location("role_docs", os.path.join(ROOT, "tools", "role_docs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


role_docs = _load_tool()


def _options(options, prefix=""):
    for name, spec in (options or {}).items():
        yield prefix + name, spec or {}
        yield from _options((spec or {}).get("options"), prefix + name + ".")


def test_docs_are_what_the_specs_generate():
    with open(os.path.join(ROOT, "docs", "roles.md"), encoding="utf-8") as handle:
        current = handle.read()
    assert current == role_docs.render(ROOT), "docs/roles.md is stale: run `make docs`"
    assert role_docs.main(["--check"]) == 0


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_documented(role):
    with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    assert specs["main"].get("short_description"), role
    with open(os.path.join(ROOT, "docs", "roles.md"), encoding="utf-8") as handle:
        docs = handle.read()
    assert f"## ikemesh.mesh.{role}\n" in docs
    for entry, spec in specs.items():
        for name, option in _options(spec.get("options")):
            description = option.get("description")
            assert description and all(
                str(part).strip() for part in ([description] if isinstance(description, str) else description)
            ), f"{role} ({entry}): {name} has no description"
            assert f"| `{name}` |" in docs, f"{role}: {name} missing from docs/roles.md"


def test_readme_links_the_role_docs():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        assert "docs/roles.md" in handle.read()


def test_renderer_formats_options_and_refuses_undocumented_ones(tmp_path):
    meta = tmp_path / "roles" / "demo" / "meta"
    meta.mkdir(parents=True)
    spec = {
        "argument_specs": {
            "main": {
                "short_description": "Demo role.",
                "description": ["Uses C(swanctl) and I(care)."],
                "options": {
                    "demo_mode": {
                        "type": "str",
                        "choices": ["a", "b"],
                        "default": "a",
                        "description": "Mode | with a pipe, see U(https://example.org).",
                    },
                    "demo_peers": {
                        "type": "list",
                        "elements": "str",
                        "required": True,
                        "description": ["Peers."],
                    },
                    "demo_flag": {"type": "bool", "default": False, "description": "A B(flag)."},
                },
            }
        }
    }
    (meta / "argument_specs.yml").write_text(yaml.safe_dump(spec))
    text = role_docs.render(str(tmp_path))
    assert "- Uses `swanctl` and *care*." in text
    assert (
        "| `demo_mode` | str | `a` |  | `a`, `b` | Mode \\| with a pipe, see <https://example.org>. |" in text
    )
    assert "| `demo_peers` | list of str |  | yes |  | Peers. |" in text
    assert "| `demo_flag` | bool | `false` |  |  | A **flag**. |" in text
    del spec["argument_specs"]["main"]["options"]["demo_flag"]["description"]
    (meta / "argument_specs.yml").write_text(yaml.safe_dump(spec))
    with pytest.raises(role_docs.SpecError, match="role demo: option demo_flag has no description"):
        role_docs.render(str(tmp_path))
