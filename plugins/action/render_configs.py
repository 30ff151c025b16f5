# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ikemesh.mesh.render_configs: every node's configuration rendered on the controller.

Documentation: plugins/modules/render_configs.py (ansible-doc ikemesh.mesh.render_configs).

All files are rendered in this one controller process, byte for byte as ansible.builtin.template
renders them (same options, same template variables, the node's variables resolved by Ansible's
Templar): each template is compiled once, rendered by a plain Jinja environment set up like Ansible's
(FastTemplate) and cross-checked in every run against Ansible's own templating, which takes over on
any difference. No module runs: files are written directly, and only when their bytes or mode differ.
"""

from __future__ import annotations

import glob
import os
import re

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.ikemesh.mesh.plugins.module_utils.files import parse_mode, sync_file

try:  # the variables ansible.builtin.template adds (ansible_managed, template_path, ...)
    from ansible._internal._templating._template_vars import (
        generate_ansible_template_vars as _core_template_vars,
    )
except ImportError:  # pragma: no cover - ansible-core < 2.19
    from ansible.template import generate_ansible_template_vars as _legacy_template_vars

    def _core_template_vars(path, fullpath=None, dest_path=None, include_ansible_managed=True):
        values = _legacy_template_vars(path, fullpath=fullpath, dest_path=dest_path)
        if not include_ansible_managed:
            values.pop("ansible_managed", None)
        return values


try:
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - ansible-core < 2.19

    def trust_as_template(value):
        return value


display = Display()
EACH = ("peer", "node")
# Play-level variables of the task's host that every node's variables include (hostvars and the magic
# variables a template may use); everything else comes from the node's own variables.
SHARED_VARS = (
    "hostvars",
    "omit",
    "playbook_dir",
    "ansible_play_hosts",
    "ansible_play_hosts_all",
    "ansible_play_batch",
    "ansible_play_name",
    "play_hosts",
    "ansible_check_mode",
    "ansible_diff_mode",
    "ansible_run_tags",
    "ansible_skip_tags",
    "ansible_version",
    "ansible_config_file",
    "ansible_forks",
)
# Template variables that differ between renderings anyway (not part of a node's variable signature)
VOLATILE = frozenset(("template_run_date", "template_destpath"))
# ansible.builtin.template's defaults (its trim_blocks, lstrip_blocks, newline_sequence)
TEMPLATE_OVERRIDES = {"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"}


# --------------------------------------------------------------------------------------------------
# pure helpers (unit-tested directly)


def template_search_path(task_vars, basedir, extra):
    """The Jinja search path ansible.builtin.template would use (for includes/imports)."""
    out = []
    for path in list(task_vars.get("ansible_search_path", [])) + [basedir] + list(extra):
        out.append(os.path.join(path, "templates"))
        out.append(path)
    return out


def check_pattern(pattern, each):
    """Validate a destination pattern (relative to dest, with {node} and, for each=peer, {peer})."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("dest must be a non-empty relative path pattern")
    if os.path.isabs(pattern):
        raise ValueError(f"dest {pattern!r} must be relative to the output directory")
    parts = pattern.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"dest {pattern!r} must not contain empty, '.' or '..' path components")
    rest = pattern.replace("{node}", "").replace("{peer}", "")
    if any(ch in rest for ch in "{}*?["):
        raise ValueError(f"dest {pattern!r}: only the placeholders {{node}} and {{peer}} are allowed")
    if "{node}" not in pattern:
        raise ValueError(f"dest {pattern!r} must contain {{node}}")
    if each == "peer" and "{peer}" not in pattern:
        raise ValueError(f"dest {pattern!r} must contain {{peer}} (the template is rendered once per peer)")
    if each == "node" and "{peer}" in pattern:
        raise ValueError(f"dest {pattern!r}: {{peer}} is only available with each=peer")
    for part in parts:
        if part.count("{node}") + part.count("{peer}") > 1:
            raise ValueError(f"dest {pattern!r}: at most one placeholder per path component")


def expand(pattern, node, peer=None):
    path = pattern.replace("{node}", node)
    return path if peer is None else path.replace("{peer}", peer)


def pattern_glob(pattern):
    """Glob matching every file the pattern can produce (for finding stale files)."""
    return glob.escape(pattern).replace("{node}", "*").replace("{peer}", "*")


def pattern_regex(pattern):
    """Regex matching the relative paths the pattern produces; groups node (and peer)."""
    regex = re.escape(pattern)
    for name in ("node", "peer"):
        regex = regex.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)", 1)
        regex = regex.replace(re.escape("{" + name + "}"), f"(?P={name})")
    return re.compile(regex + r"\Z")


def planned_files(plan_nodes, selected, templates):
    """The files to render: list of (relative path, template index, node name, peer entry or None)."""
    jobs = []
    seen = {}
    for name in selected:
        node = plan_nodes[name]
        for t_index, spec in enumerate(templates):
            items = [None] if spec["each"] == "node" else node.get("peers") or []
            for peer in items:
                rel = expand(spec["dest"], name, None if peer is None else str(peer["name"]))
                if rel in seen:
                    raise ValueError(
                        f"two files map to the same path {rel!r}: {seen[rel]} and {name}/{t_index}"
                    )
                seen[rel] = f"{name}/{t_index}"
                jobs.append((rel, t_index, name, peer))
    return jobs


def stale_files(root, templates, planned, selected, plan_node_names):
    """Existing files under root that a template pattern produced but that are no longer planned.

    Only files of the selected nodes and of nodes that are not in the plan at all are considered (a
    run limited to some nodes leaves the other planned nodes' files alone).  Returns sorted relative
    paths.
    """
    selected = set(selected)
    stale = set()
    for spec in templates:
        regex = pattern_regex(spec["dest"])
        for path in glob.glob(os.path.join(glob.escape(root), pattern_glob(spec["dest"]))):
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            match = regex.match(rel)
            if not match or rel in planned or not (os.path.isfile(path) or os.path.islink(path)):
                continue
            node = match.group("node")
            if node in selected or node not in plan_node_names:
                stale.add(rel)
    return sorted(stale)


def remove_file(root, rel, check_mode=False):
    """Remove root/rel and the directories that became empty, up to (not including) root."""
    if check_mode:
        return
    path = os.path.join(root, rel)
    os.unlink(path)
    directory = os.path.dirname(path)
    root = os.path.abspath(root)
    while os.path.abspath(directory) != root and os.path.abspath(directory).startswith(root + os.sep):
        try:
            os.rmdir(directory)
        except OSError:
            break
        directory = os.path.dirname(directory)


def shape(entry):
    """What a plan entry looks like, for choosing files to cross-check: its keys, the types of their
    values and the values of its flags (booleans)."""
    if not isinstance(entry, dict):
        return type(entry).__name__
    return tuple(
        (key, value if isinstance(value, bool) else type(value).__name__)
        for key, value in sorted(entry.items())
    )


def normalise_templates(raw):
    """Validate the templates option and fill in defaults."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ValueError("templates must be a non-empty list of {src, dest[, each, mode]}")
    out = []
    for number, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise ValueError(f"templates[{number}]: must be a dict, got {item!r}")
        unknown = set(item) - {"src", "dest", "each", "mode"}
        if unknown:
            raise ValueError(f"templates[{number}]: unknown keys {', '.join(sorted(unknown))}")
        if not item.get("src") or not isinstance(item["src"], str):
            raise ValueError(f"templates[{number}]: src is required")
        each = item.get("each", "peer")
        if each not in EACH:
            raise ValueError(f"templates[{number}]: each must be one of {', '.join(EACH)}, got {each!r}")
        dest = item.get("dest")
        try:
            check_pattern(dest, each)
            mode = parse_mode(item.get("mode", "0644"))
        except ValueError as exc:
            raise ValueError(f"templates[{number}]: {exc}") from None
        out.append({"src": str(item["src"]), "dest": str(dest), "each": each, "mode": mode})
    return out


# --------------------------------------------------------------------------------------------------
# templating


def count_trailing_newlines(text):
    return len(text) - len(text.rstrip("\n"))


class CompileCache:
    """Compile each distinct template once per engine (Ansible's engine compiles on every call).

    Installed on the engine of our own Templar copy only; compilation depends on nothing but the
    template text, the options and the (unchanged) environment, so reusing the result is exact.
    """

    def __init__(self, engine):
        self.original = engine._compile_template
        self.cache = {}
        engine._compile_template = self

    def __call__(self, template, options):
        try:
            key = (str(template), options)
            hash(key)
        except TypeError:
            return self.original(template, options)
        compiled = self.cache.get(key)
        if compiled is None:
            compiled = self.cache[key] = self.original(template, options)
        return compiled


class _PluginMap(dict):
    """Jinja filters/tests resolved like Ansible does: Ansible's plugin (FQCN or short name) first,
    then Jinja's builtin of that name."""

    def __init__(self, builtins, loader):
        super().__init__()
        self._builtins = builtins
        self._loader = loader

    def __missing__(self, key):
        plugin = None
        if self._loader is not None:
            try:
                plugin = self._loader.get(key)
            except Exception:  # noqa: BLE001 - like Ansible: an unloadable plugin is an unknown one
                plugin = None
        func = getattr(plugin, "j2_function", None) if plugin is not None else None
        if func is None:
            func = self._builtins[key]  # KeyError: unknown
        self[key] = func
        return func

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key):
        return self.get(key) is not None


def _default(value, default_value="", boolean=False):
    """Ansible's default filter (ansible.builtin.default), for plain Jinja's Undefined."""
    from jinja2 import Undefined

    if not isinstance(boolean, bool):
        raise TypeError(f"boolean must be a bool, got {type(boolean).__name__}")
    if isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


# Ansible filters written for Ansible's own Undefined (markers), replaced for the fast renderer
FAST_FILTERS = {
    "default": _default,
    "d": _default,
    "ansible.builtin.default": _default,
    "ansible.builtin.d": _default,
}


def _finalize(value):
    return "" if value is None else value  # Ansible drops None nodes instead of printing "None"


class FastTemplate:
    """A template compiled once with plain Jinja, configured like ansible.builtin.template (trim_blocks,
    no lstrip_blocks, "\n" newlines, trailing newlines of the source kept, undefined variables are
    errors, None prints as nothing, Ansible's filters and tests), rendered with plain variables.

    Only for templates that use plain variables: templates using lookups, hostvars, includes or
    imports are rendered by Ansible (usable is False). The action cross-checks a rendering of every
    node against Ansible's templating and falls back to it on any difference.
    """

    ANSIBLE_ONLY = frozenset(("lookup", "query", "q", "now", "undef", "omit", "hostvars", "vars"))

    def __init__(self, text, filter_loader=None, test_loader=None):
        from jinja2 import StrictUndefined, meta
        from jinja2.defaults import DEFAULT_FILTERS, DEFAULT_TESTS
        from jinja2.sandbox import SandboxedEnvironment

        env = SandboxedEnvironment(
            trim_blocks=True,
            lstrip_blocks=False,
            newline_sequence="\n",
            keep_trailing_newline=False,
            undefined=StrictUndefined,
            autoescape=False,
            finalize=_finalize,
        )
        env.filters = _PluginMap(DEFAULT_FILTERS, filter_loader)
        env.filters.update(FAST_FILTERS)
        env.tests = _PluginMap(DEFAULT_TESTS, test_loader)
        text = str(text)
        ast = env.parse(text)
        self.names = frozenset(meta.find_undeclared_variables(ast))
        self.usable = not (self.names & self.ANSIBLE_ONLY) and not list(meta.find_referenced_templates(ast))
        self.template = env.from_string(ast) if self.usable else None
        self.newlines = count_trailing_newlines(text)

    def render(self, variables):
        result = self.template.render(variables)
        missing = self.newlines - count_trailing_newlines(result)
        return result + "\n" * missing if missing > 0 else result


def resolve_role(role):
    """Directory of a role given as a path or as a collection role name (namespace.collection.role)."""
    if os.path.isdir(os.path.expanduser(role)):
        return os.path.abspath(os.path.expanduser(role))
    parts = role.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError(
            f"role {role!r} is neither a directory nor a collection role name (ns.collection.role)"
        )
    import importlib

    try:
        package = importlib.import_module(f"ansible_collections.{parts[0]}.{parts[1]}")
    except ImportError:
        raise ValueError(f"role {role!r}: collection {parts[0]}.{parts[1]} not found") from None
    for base in list(getattr(package, "__path__", [])):
        path = os.path.join(base, "roles", parts[2])
        if os.path.isdir(path):
            return os.path.abspath(path)
    raise ValueError(f"role {role!r} not found in the collection {parts[0]}.{parts[1]}")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        (
            "plan",
            "ledger_file",
            "dest",
            "role",
            "templates",
            "defaults",
            "vars",
            "nodes",
            "prune",
            "renderer",
            "verify",
            "plan_var",
            "node_var",
            "peer_var",
        )
    )

    def run(self, tmp=None, task_vars=None):
        if task_vars is None:
            task_vars = {}
        result = super().run(tmp, task_vars)
        del tmp
        try:
            return self._run(self._task.args, task_vars, result)
        except (ValueError, TypeError) as exc:
            raise AnsibleActionFail(f"ikemesh.mesh.render_configs: {exc}") from None

    # ----------------------------------------------------------------------------------------------

    def _run(self, args, task_vars, result):
        root = args.get("dest")
        if not root or not isinstance(root, str):
            raise ValueError("dest (the output directory) is required")
        root = os.path.abspath(os.path.expanduser(root))
        templates = normalise_templates(args.get("templates"))
        self._names = {
            "plan": str(args.get("plan_var") or "ikemesh_plan"),
            "node": str(args.get("node_var") or "__ikemesh_node"),
            "peer": str(args.get("peer_var") or "__ikemesh_peer"),
        }
        prune = self._bool(args.get("prune", True), "prune")
        verify = args.get("verify", 10)
        if isinstance(verify, bool) or not isinstance(verify, int) or verify < 0:
            raise ValueError(f"verify must be a non-negative integer, got {verify!r}")
        renderer = args.get("renderer") or "fast"
        if renderer not in ("fast", "ansible"):
            raise ValueError(f"renderer must be fast or ansible, got {renderer!r}")
        extra_vars = args.get("vars") or {}
        if not isinstance(extra_vars, dict):
            raise ValueError("vars must be a mapping")
        role_dir = resolve_role(str(args["role"])) if args.get("role") else None
        defaults_files = args.get("defaults")
        if defaults_files is None:
            defaults_files = [os.path.join(role_dir, "defaults", "main.yml")] if role_dir else []
            defaults_files = [path for path in defaults_files if os.path.isfile(path)]
        elif isinstance(defaults_files, str) or not isinstance(defaults_files, (list, tuple)):
            raise ValueError("defaults must be a list of files")

        plan = args.get("plan")
        if plan is None:
            plan = self._compute_plan(task_vars, args.get("ledger_file"))
        if not isinstance(plan, dict) or not isinstance(plan.get("nodes"), dict):
            raise ValueError("plan must be the mesh plan (the ikemesh_plan fact), with a 'nodes' mapping")
        plan_nodes = plan["nodes"]
        selected = args.get("nodes")
        if selected is None:
            selected = list(plan_nodes)
        elif isinstance(selected, (str, bytes)) or not isinstance(selected, (list, tuple)):
            raise ValueError("nodes must be a list of inventory hostnames")
        else:
            selected = [str(name) for name in selected]
            missing = [name for name in selected if name not in plan_nodes]
            if missing:
                raise ValueError(f"nodes not in the plan: {', '.join(missing)}")
        check_mode = bool(self._task.check_mode)

        defaults = {}
        for path in defaults_files:
            defaults.update(self._load_defaults(path))
        sources = []
        for spec in templates:
            src = spec["src"]
            if role_dir and not os.path.isabs(src):
                fullpath = os.path.join(role_dir, "templates", src)
                if not os.path.isfile(fullpath):
                    raise ValueError(f"template {src} not found in {os.path.join(role_dir, 'templates')}")
            else:
                try:
                    fullpath = self._find_needle("templates", src)
                except AnsibleError as exc:
                    raise ValueError(to_text(exc)) from None
            text = trust_as_template(self._loader.get_text_file_contents(fullpath))
            sources.append((fullpath, text))

        jobs = planned_files(plan_nodes, selected, templates)
        planned = {rel for rel, _t, _n, _p in jobs}
        stale = stale_files(root, templates, planned, selected, set(plan_nodes)) if prune else []

        templar = self._templar.copy_with_new_env(
            searchpath=template_search_path(
                task_vars, self._loader.get_basedir(), [os.path.dirname(f) for f, _text in sources]
            )
        )
        if hasattr(getattr(templar, "_engine", None), "_compile_template"):
            CompileCache(templar._engine)
        self._templar_copy = templar
        self._plan = plan
        self._templates = templates
        self._sources = sources
        self._root = root
        self._hostvars = task_vars.get("hostvars")
        self._shared = {key: task_vars[key] for key in SHARED_VARS if key in task_vars}
        self._defaults = defaults
        self._extra_vars = extra_vars
        self._context_node = None
        self._contexts = {}

        fast = [self._fast_template(text) if renderer == "fast" else None for _f, text in sources]
        # jobs rendered fast, re-rendered if the renderer fails a check
        unverified = [[] for _template in templates]
        written = {}
        checked = 0
        seen_kinds = set()
        made_dirs = set()
        for number, (rel, t_index, name, peer) in enumerate(jobs):
            context = self._context(name, t_index, fast[t_index])
            path = os.path.join(root, rel)
            data = None
            tmpl = fast[t_index]
            if tmpl is not None and context["plain"] is not None:
                data = self._render_fast(tmpl, context["plain"], path, peer)
                kind = (t_index, context["signature"], context["shape"], shape(peer))
                if data is not None and (checked < verify or kind not in seen_kinds):
                    # cross-check the first files and the first of every new combination of the node's
                    # variables and the shape (types, flags) of the node's and the peer's plan entries
                    checked += 1
                    seen_kinds.add(kind)
                    reference = self._render_ansible(context, path, peer, rel)
                    if reference != data:
                        fast[t_index] = None  # not trusted again in this run
                        display.warning(
                            f"ikemesh.mesh.render_configs: {templates[t_index]['src']}: the fast renderer "
                            f"differs from Ansible's templating for {rel}; Ansible's templating renders "
                            "this template's files"
                        )
                        for earlier in unverified[t_index]:
                            self._rewrite(jobs[earlier], check_mode, made_dirs, written)
                        unverified[t_index] = []
                    data = reference
                elif data is not None:
                    unverified[t_index].append(number)
            if data is None:
                data = self._render_ansible(context, path, peer, rel)
            if sync_file(path, data, templates[t_index]["mode"], check_mode, made_dirs):
                written[rel] = True

        for rel in stale:
            remove_file(root, rel, check_mode)

        result.update(
            changed=bool(written or stale),
            dest=root,
            nodes=len(selected),
            files=len(jobs),
            written=list(written),
            removed=stale,
            renderer="fast" if all(fast) else "ansible",
            verified=checked,
        )
        return result

    # ----------------------------------------------------------------------------------------------
    # variables

    def _compute_plan(self, task_vars, ledger_file):
        """The plan exactly as the role ikemesh.mesh.plan computes it (the mesh_plan filter over the
        inventory groups, with the allocation ledger), without storing it as a fact."""
        from ansible_collections.ikemesh.mesh.plugins.filter.mesh import mesh_plan

        groups = task_vars.get("groups") or {}
        ledger = None
        if ledger_file:
            try:
                with open(os.path.expanduser(str(ledger_file))) as handle:
                    text = handle.read()
            except FileNotFoundError:
                text = ""
            if text.strip():
                import json

                try:
                    ledger = json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"ledger_file {ledger_file}: not JSON: {exc}") from None
        try:
            return mesh_plan(
                groups.get("ikemesh_nodes") or [],
                task_vars.get("hostvars"),
                groups.get("ikemesh_hubs") or [],
                ledger,
            )
        except AnsibleError as exc:
            raise AnsibleActionFail(to_text(exc.message if hasattr(exc, "message") else exc)) from None

    def _context(self, name, t_index, tmpl):
        """Variables of a node for a template: Ansible's (lazy) set, and the plain values the fast
        renderer needs (resolved once by Ansible's templating), cached for the current node."""
        if name != self._context_node:
            self._context_node = name
            self._contexts = {}
            node_vars = dict(self._defaults)
            node_vars.update(self._shared)
            if self._hostvars is not None and hasattr(self._hostvars, "raw_get"):
                raw = self._hostvars.raw_get(name)
                if hasattr(raw, "keys"):
                    node_vars.update(raw)
            node_vars.update(self._extra_vars)
            node_vars[self._names["plan"]] = self._plan
            node_vars[self._names["node"]] = self._plan["nodes"][name]
            self._node_vars = node_vars
        context = self._contexts.get(t_index)
        if context is None:
            fullpath = self._sources[t_index][0]
            variables = dict(self._node_vars)
            variables.update(
                _core_template_vars(
                    path=self._templates[t_index]["src"],
                    fullpath=fullpath,
                    dest_path=None,
                    include_ansible_managed="ansible_managed" not in self._node_vars,
                )
            )
            context = self._contexts[t_index] = {
                "t_index": t_index,
                "variables": variables,
                "plain": None,
                "signature": None,
                "shape": shape(self._plan["nodes"][name]),
            }
            if tmpl is not None:
                own = {self._names["plan"], self._names["node"], self._names["peer"], "template_destpath"}
                plain = self._plain_vars(variables, tmpl.names - own)
                if plain is not None:
                    context["signature"] = repr(
                        sorted((k, repr(v)) for k, v in plain.items() if k not in VOLATILE)
                    )
                    plain[self._names["plan"]] = self._plan
                    plain[self._names["node"]] = self._plan["nodes"][name]
                    context["plain"] = plain
                    context["names"] = tmpl.names
        return context

    def _plain_vars(self, variables, names):
        """The named variables, templated by Ansible in the node's context (None if that fails)."""
        templar = self._templar_copy
        templar.available_variables = variables
        plain = {}
        try:
            for name in names:
                if name in variables:
                    plain[name] = templar.template(variables[name])
        except Exception:  # noqa: BLE001 - the Ansible rendering reports real errors
            return None
        return plain

    # ----------------------------------------------------------------------------------------------
    # rendering

    def _render_ansible(self, context, path, peer, rel):
        """Render like ansible.builtin.template (same Templar, options and variables)."""
        variables = context["variables"]
        variables["template_destpath"] = path
        if peer is not None:
            variables[self._names["peer"]] = peer
        templar = self._templar_copy
        templar.available_variables = variables
        text = self._sources[context["t_index"]][1]
        try:
            rendered = templar.template(text, escape_backslashes=False, overrides=TEMPLATE_OVERRIDES)
        except AnsibleError as exc:
            raise AnsibleActionFail(f"ikemesh.mesh.render_configs: {rel}: {to_text(exc)}") from None
        return ("" if rendered is None else to_text(rendered)).encode("utf-8", "surrogateescape")

    def _render_fast(self, tmpl, plain, path, peer):
        if peer is not None:
            plain[self._names["peer"]] = peer
        if "template_destpath" in tmpl.names:
            plain["template_destpath"] = path
        try:
            return tmpl.render(plain).encode("utf-8", "surrogateescape")
        except Exception:  # noqa: BLE001 - Ansible's templating renders it (or reports the error)
            return None

    def _rewrite(self, job, check_mode, made_dirs, written):
        rel, t_index, name, peer = job
        self._context_node = None  # the cached context is the current node's
        context = self._context(name, t_index, None)
        path = os.path.join(self._root, rel)
        data = self._render_ansible(context, path, peer, rel)
        if sync_file(path, data, self._templates[t_index]["mode"], check_mode, made_dirs):
            written[rel] = True
        self._context_node = None

    @staticmethod
    def _fast_template(text):
        try:
            from ansible.plugins.loader import filter_loader, test_loader

            tmpl = FastTemplate(text, filter_loader, test_loader)
        except Exception:  # noqa: BLE001 - e.g. syntax Ansible accepts and plain Jinja does not
            return None
        return tmpl if tmpl.usable else None

    # ----------------------------------------------------------------------------------------------

    @staticmethod
    def _bool(value, name):
        from ansible.module_utils.parsing.convert_bool import boolean

        try:
            return boolean(value, strict=True)
        except TypeError:
            raise ValueError(f"{name} must be a boolean, got {value!r}") from None

    def _load_defaults(self, path):
        """A role's defaults file (YAML, may be vaulted; values may be templates, like role defaults)."""
        path = os.path.expanduser(str(path))
        if not os.path.isfile(path):
            raise ValueError(f"defaults file {path} not found")
        try:
            data = self._loader.load_from_file(path, trusted_as_template=True)
        except TypeError:  # pragma: no cover - ansible-core < 2.19
            data = self._loader.load_from_file(path)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"defaults file {path} must hold a mapping of variables")
        return data
