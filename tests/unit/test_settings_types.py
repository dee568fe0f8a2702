"""The typed settings and every enum in the code are tied to the schema, key for key and value for value."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from ctpatch.settings import default_config, key_schema, schema, scope_settings
from ctpatch.settings import types as T


def _resolve(node: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        target = schema()
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _walk(cls, node: dict, where: str):
    """(dotted key, field type, schema node) of every field of ``cls`` and its nested classes; asserts the
    field names are exactly the schema's properties."""
    props = _resolve(node)["properties"]
    names = [f.name for f in dataclasses.fields(cls)]
    assert set(names) == set(props), f"{where or 'top level'}: fields {sorted(names)} vs schema {sorted(props)}"
    hints = typing.get_type_hints(cls)
    for name in names:
        sub = _resolve(props[name])
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            yield from _walk(kind, sub, f"{where}{name}.")
        else:
            yield f"{where}{name}", kind, sub


FIELDS = list(_walk(T.Config, schema(), ""))


def test_every_schema_key_is_a_typed_field():
    assert len(FIELDS) > 80  # every leaf key of both modes and the shared sections


@pytest.mark.parametrize("key, kind, node", FIELDS, ids=[f[0] for f in FIELDS])
def test_field_type_matches_the_schema(key, kind, node):
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    if typing.get_origin(kind) is tuple:
        assert types == ["array"], key
        item = typing.get_args(kind)[0]
        enum = node["items"].get("enum")
        if enum is not None:
            assert typing.get_origin(item) is typing.Literal and list(typing.get_args(item)) == enum, key
        return
    if "enum" in node:
        assert typing.get_origin(kind) is typing.Literal, f"{key}: an enum in the schema, {kind} in the code"
        assert list(typing.get_args(kind)) == node["enum"], key
        return
    expected = {"integer": int, "number": float, "boolean": bool, "string": str}
    wanted = {expected[t] for t in types if t != "null"}
    got = (
        set(typing.get_args(kind)) - {type(None)}
        if typing.get_origin(kind) in (typing.Union, type(int | None))
        else {kind}
    )
    assert got == wanted, f"{key}: {kind} in the code, {types} in the schema"
    assert ("null" in types) == (type(None) in typing.get_args(kind)), key


@pytest.mark.parametrize("mode, cls", [("luna16", T.LunaPatches), ("ldct", T.LdctPatches)])
def test_the_job_classes_are_the_patches_scope(mode, cls):
    scope = scope_settings(default_config(mode), "patches")
    assert {f.name for f in dataclasses.fields(cls)} == set(scope)
    built = T.build(cls, scope)
    assert built.seed == 0 and built.mode == mode


def test_build_names_a_missing_key():
    with pytest.raises(KeyError, match="'patch.stride'"):
        T.build(T.Luna16, {**default_config()["luna16"], "patch": {"size": 68}})


# ---------------------------------------------------------------- enums written in the code
def _code_enums():
    from ctpatch.core.grid import LAST_MODES, SIZE_CODES
    from ctpatch.core.normalize import NORMALIZATIONS
    from ctpatch.core.shifts import DEFAULT_DIRECTIONS
    from ctpatch.core.sr import FOOTPRINTS, SR_BASE
    from ctpatch.io.dicom import ON_ERROR, PAIR_BY
    from ctpatch.io.tables import DUPLICATES
    from ctpatch.ldct.combine import HOW
    from ctpatch.ldct.job import INTEGER_DTYPES
    from ctpatch.luna16.convert import INTERPOLATORS
    from ctpatch.luna16.layouts import LAYOUTS
    from ctpatch.readers.contract import LAYOUTS as LDCT_LAYOUTS
    from ctpatch.settings import MODES
    from ctpatch.store.codecs import COMPRESSION

    return [
        ("mode", MODES),
        ("luna16.output.layout", LAYOUTS),
        ("luna16.resample.interpolator", tuple(INTERPOLATORS)),
        ("luna16.duplicate_annotations", DUPLICATES),
        ("ldct.pair_by", PAIR_BY),
        ("ldct.on_error", ON_ERROR),
        ("ldct.patch.last", LAST_MODES),
        ("ldct.super_resolution.footprint", FOOTPRINTS),
        ("ldct.normalization", NORMALIZATIONS),
        ("ldct.output.layout", LDCT_LAYOUTS),
        ("ldct.output.combined", ("none", *HOW)),
        ("luna16.output.compression", tuple(COMPRESSION)),
        ("ldct.patch.code", (*SR_BASE, None)),  # super-resolution has every code; plain mode all but p54
        ("luna16.patch.directions", DEFAULT_DIRECTIONS),
    ], (INTEGER_DTYPES, SIZE_CODES, SR_BASE)


def test_every_enum_in_the_code_is_the_schemas():
    pairs, (integer_dtypes, size_codes, sr_base) = _code_enums()
    for key, values in pairs:
        node = key_schema(key)
        if key == "luna16.patch.directions":
            assert list(values) == node["items"]["enum"] == node["default"], key
        elif key == "ldct.output.layout":
            assert sorted(values) == sorted(node["enum"]), key
        else:
            assert list(values) == node["enum"], f"{key}: {list(values)} in the code, {node['enum']} in the schema"
    assert set(size_codes) == set(sr_base) - {"p54"}
    assert set(integer_dtypes) == {d for d in key_schema("ldct.output.dtype")["enum"] if "int" in d}
