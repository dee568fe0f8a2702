"""The config schema (``ctpatch/schemas/config.schema.yaml``, package data): the only home of defaults and enums."""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib.resources import files

import yaml

SCHEMA = files("ctpatch") / "schemas" / "config.schema.yaml"


# ------------------------------------------------------------------------------ the schema
@lru_cache(maxsize=1)
def schema() -> dict:
    """The config schema (a JSON schema as a mapping), read once per process."""
    return yaml.safe_load(SCHEMA.read_text())


def _resolve(node: dict, root: dict) -> dict:
    """``node`` with a local ``$ref`` (``#/$defs/...``) merged under its own keys."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolve(target, root), **{k: v for k, v in node.items() if k != "$ref"}}


def key_schema(key: str) -> dict:
    """The schema of one dotted key, ``$ref`` resolved.

    >>> key_schema("luna16.output.compression")["default"]
    'blosc2-zstd'
    """
    root = schema()
    node = root
    for part in key.split("."):
        node = _resolve(node, root)["properties"][part]
    return _resolve(node, root)


def choices(key: str) -> tuple:
    """The allowed values of a dotted key with an ``enum``, in the schema's order.

    >>> choices("ldct.output.dtype")
    ('float16', 'float32', 'int16', 'uint16')
    """
    return tuple(key_schema(key)["enum"])


def fill_defaults(instance: dict, node: dict | None = None, root: dict | None = None) -> dict:
    """Fill the schema's defaults into ``instance`` in place (recursively); return it.

    A missing key takes a copy of its ``default``; a present or defaulted mapping is filled
    the same way from its own sub-schema.

    Examples
    --------
    >>> fill_defaults({"luna16": {"patch": {"size": 32}}})["luna16"]["patch"]["stride"]
    8
    """
    root = schema() if root is None else root
    node = _resolve(root if node is None else node, root)
    for key, sub in node.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and "properties" in sub:
            fill_defaults(instance[key], sub, root)
    return instance
