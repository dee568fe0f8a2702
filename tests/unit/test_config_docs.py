"""config/README.md documents every key of the schema, in the schema's order, with the schema's default."""

from __future__ import annotations

import re

import pytest
import yaml
from paths import REPO

from ctpatch.settings import schema

README = (REPO / "config" / "README.md").read_text()
KEYS_PART = README[README.index("## Every key") :]
#: the README's key rows: | `key` | type | `default` | allowed | meaning |
ROWS = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z0-9_.]+)` \|.*$", KEYS_PART, re.M)}


def key_paths(node: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """(dotted path, schema) of every key below ``node``, depth first in the schema's order; objects first."""
    out = []
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        out.append((path, sub))
        if sub.get("type") == "object":
            out += key_paths(sub, path + ".")
    return out


KEYS = key_paths(schema())
LEAVES = [(path, sub) for path, sub in KEYS if sub.get("type") != "object"]


def rendered(value) -> str:
    """A default as the README writes it: YAML flow style."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def test_every_key_of_the_schema_has_a_description():
    """Every key says what it is (a comma inside an unquoted flow-style description would cut it short
    and add a key named after the rest)."""
    keywords = {"type", "enum", "default", "description", "properties", "additionalProperties", "$ref", "items"}
    keywords |= {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "uniqueItems"}
    keywords |= {"minLength"}
    for path, sub in KEYS:
        assert set(sub) <= keywords | {"pattern"}, (path, sorted(set(sub) - keywords))
        if sub.get("type") != "object":
            assert isinstance(sub.get("description"), str) and sub["description"].strip(), path


def test_every_key_path_is_documented_in_the_schemas_order():
    assert [path for path, _ in LEAVES] == list(ROWS)  # one row per key, none else, in order
    for path, sub in KEYS:
        if sub.get("type") == "object":  # each section is named, e.g. `luna16.resample.enabled`
            assert f"`{path}" in KEYS_PART, path


@pytest.mark.parametrize("path, sub", LEAVES, ids=[path for path, _ in LEAVES])
def test_each_row_gives_the_schemas_default_and_choices(path, sub):
    cells = [c.strip() for c in ROWS[path].strip("|").split("|")]
    assert len(cells) == 5, ROWS[path]  # key, type, default, allowed, meaning
    assert cells[2] == f"`{rendered(sub['default'])}`", (path, cells[2])
    choices = sub.get("enum") or (schema()["$defs"]["codec"]["enum"] if "$ref" in sub else [])
    for choice in choices:
        assert f"`{rendered(choice)}`" in cells[3], (path, choice)
    assert cells[4], path
