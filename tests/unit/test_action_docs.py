"""Each action plugin's ARGUMENT_SPEC (plugins/action/NAME.py) says what its documentation
(plugins/modules/NAME.py, doc fragments resolved by ansible-doc) says: the same options and
suboptions, with the same type, elements, default, choices, required and aliases."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TOP, ansible_env

ACTIONS = sorted(p.stem for p in (TOP / "plugins" / "action").glob("*.py") if not p.name.startswith("_"))

# Options documented with suboptions that the spec cannot validate, with the reason.
# allocate's owners: each item is a name or a mapping (elements: raw), which
# plugin_utils.allocator.parse_owners checks; an argument spec can only check mappings.
UNVALIDATED_SUBOPTIONS = {("allocate", "owners")}


@pytest.fixture(scope="module")
def docs():
    """ansible-doc's view of every action's documentation, fragments resolved."""
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-doc")), "--json", "-t", "module",
         *("fleetid.subid.%s" % name for name in ACTIONS)],
        env=ansible_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return {fqcn.rsplit(".", 1)[1]: data["doc"] for fqcn, data in json.loads(proc.stdout).items()}


def spec_of(name):
    return importlib.import_module("ansible_collections.fleetid.subid.plugins.action.%s" % name).ARGUMENT_SPEC


def compare(action, path, documented, spec):
    """Disagreements between documented options and an argument spec, as readable lines."""
    problems = []
    for option in sorted(set(documented) - set(spec)):
        problems.append("%s: %s%s is documented but not in ARGUMENT_SPEC" % (action, path, option))
    for option in sorted(set(spec) - set(documented)):
        problems.append("%s: %s%s is in ARGUMENT_SPEC but not documented" % (action, path, option))
    for option in sorted(set(documented) & set(spec)):
        doc, arg = documented[option], spec[option]
        where = "%s: %s%s" % (action, path, option)
        for key, default in (("type", "str"), ("elements", None), ("default", None), ("choices", None),
                             ("required", False), ("aliases", None)):
            doc_value, arg_value = doc.get(key, default), arg.get(key, default)
            if key == "aliases":
                doc_value, arg_value = sorted(doc_value or []), sorted(arg_value or [])
            if doc_value != arg_value or (key == "default" and type(doc_value) is not type(arg_value)
                                          and not {type(doc_value), type(arg_value)} <= {int, float}):
                problems.append("%s: %s is %r in the documentation, %r in ARGUMENT_SPEC"
                                % (where, key, doc_value, arg_value))
        doc_sub, arg_sub = doc.get("suboptions"), arg.get("options")
        if doc_sub and not arg_sub and (action, path + option) in UNVALIDATED_SUBOPTIONS:
            continue
        if doc_sub or arg_sub:
            problems += compare(action, path + option + ".", doc_sub or {}, arg_sub or {})
    return problems


def test_every_action_has_a_documentation_module():
    assert ACTIONS == ["adopt", "allocate", "audit", "ledger_copy", "ledger_info", "vars_check"]
    for name in ACTIONS:
        assert (TOP / "plugins" / "modules" / ("%s.py" % name)).is_file(), name


@pytest.mark.parametrize("action", ACTIONS)
def test_argument_spec_matches_documentation(docs, action):
    assert compare(action, "", docs[action]["options"], spec_of(action)) == []


def test_the_check_finds_a_difference():
    documented = {"pool": {"type": "dict", "required": True,
                           "suboptions": {"floor": {"type": "int", "default": 1000}}},
                  "mode": {"type": "str", "choices": ["a", "b"]}}
    spec = {"pool": {"type": "dict", "required": True}, "mode": {"type": "str", "choices": ["a"]},
            "extra": {"type": "bool", "default": False}}
    assert compare("x", "", documented, spec) == [
        "x: extra is in ARGUMENT_SPEC but not documented",
        "x: mode: choices is ['a', 'b'] in the documentation, ['a'] in ARGUMENT_SPEC",
        "x: pool.floor is documented but not in ARGUMENT_SPEC",
    ]


@pytest.mark.parametrize("action", ["allocate", "adopt", "audit"])
def test_the_pool_is_documented_once_for_every_action(docs, action):
    """One doc fragment (fleetid.subid.pool) for the option the three actions share."""
    source = (TOP / "plugins" / "modules" / ("%s.py" % action)).read_text()
    assert "fleetid.subid.pool" in source and "\n  pool:\n" not in source
    assert set(docs[action]["options"]["pool"]["suboptions"]) == {"ranges", "reserved", "block_size", "floor", "min_count"}
