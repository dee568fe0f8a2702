"""Tests of ctpatch.settings: defaults are the SPEC reference values; invalid values name their key."""

from __future__ import annotations

import copy

import pytest
import yaml
from paths import REPO

from ctpatch.settings import ConfigError, load_config, validate


@pytest.fixture(scope="module")
def defaults():
    return validate({})


def test_defaults_are_the_spec_reference_values(defaults):
    luna = defaults["luna16"]
    patch = luna["patch"]
    assert patch["size"] == 68  # P
    assert patch["stride"] == 8  # S
    assert patch["shifts_per_side"] == 4 == patch["size"] // 2 // patch["stride"]  # M = h // S
    assert patch["label_pool"] == 9
    assert -(-patch["size"] // patch["label_pool"]) == 8  # 68 -> 8 label blocks
    assert patch["directions"] == ["x", "y", "z", "xy", "xz", "yz", "xyz"]
    assert luna["negatives"]["ratio"] == 3
    assert luna["negatives"]["strategy"] == "random"
    assert luna["negatives"]["scans"] == "with_nodules"
    # linear, not the reference's cubic spline (issue #6: within half a voxel, ~20x faster; bspline stays)
    assert luna["resample"] == {"enabled": True, "spacing_mm": 1.25, "interpolator": "linear"}
    assert luna["normalize"] == {"hu_min": -1000.0, "hu_max": 400.0, "clip": True, "center": 0.25}
    assert luna["output"]["compression"] == "blosc2-zstd"  # not the reference's lzf (benchmarks: Codecs)
    assert luna["output"]["dtype"] == "float32"
    assert luna["output"]["shuffle"] is True
    assert defaults["seed"] == 0 and defaults["mode"] == "luna16"


def test_given_values_are_kept_and_the_rest_filled():
    cfg = validate({"luna16": {"patch": {"size": 64, "stride": 4}}, "seed": 7})
    assert cfg["luna16"]["patch"] == {
        "size": 64,
        "stride": 4,
        "shifts_per_side": 4,
        "label_pool": 9,
        "directions": ["x", "y", "z", "xy", "xz", "yz", "xyz"],
    }
    assert cfg["seed"] == 7 and cfg["luna16"]["normalize"]["hu_min"] == -1000.0


@pytest.mark.parametrize(
    "config, key",
    [
        ({"luna16": {"patch": {"size": "x"}}}, "luna16.patch.size"),
        ({"luna16": {"patch": {"stride": 2.5}}}, "luna16.patch.stride"),
        ({"luna16": {"resample": {"spacing_mm": "1.25"}}}, "luna16.resample.spacing_mm"),
        ({"luna16": {"resample": {"spacing_mm": 0}}}, "luna16.resample.spacing_mm"),
        ({"seed": -1}, "seed"),
        ({"luna16": {"negatives": {"strategy": "bogus"}}}, "luna16.negatives.strategy"),
        ({"luna16": {"output": {"dtype": "int8"}}}, "luna16.output.dtype"),
        ({"luna16": {"output": {"compression": "zstd"}}}, "luna16.output.compression"),
        ({"luna16": {"resample": {"interpolator": "cubic"}}}, "luna16.resample.interpolator"),
        ({"luna16": {"patch": {"directions": ["x", "w"]}}}, "luna16.patch.directions.1"),
        ({"mode": "ct"}, "mode"),
    ],
)
def test_invalid_value_names_the_key(config, key):
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert f"{key}:" in str(err.value)


@pytest.mark.parametrize(
    "config, where, unknown",
    [
        ({"luna16": {"patch": {"edge": 68}}}, "luna16.patch", "edge"),
        ({"luna16": {"negative": {}}}, "luna16", "negative"),
        ({"bogus": 1}, "(top level)", "bogus"),
    ],
)
def test_unknown_key_is_named(config, where, unknown):
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert f"{where}:" in str(err.value) and f"'{unknown}'" in str(err.value)


@pytest.mark.parametrize(
    "patch",
    [
        {"stride": 9},  # 9 * 4 = 36 >= 34
        {"stride": 8, "shifts_per_side": 5},  # 40 >= 34
        {"size": 64},  # 8 * 4 = 32 >= 32
        {"size": 20, "stride": 5, "shifts_per_side": 2},  # 10 >= 10
    ],
)
def test_shifts_reaching_half_the_patch_are_rejected(patch):
    with pytest.raises(ConfigError) as err:
        validate({"luna16": {"patch": patch}})
    msg = str(err.value)
    assert "luna16.patch" in msg and "stride" in msg and "shifts_per_side" in msg


@pytest.mark.parametrize(
    "patch", [{"size": 66}, {"size": 20, "stride": 3, "shifts_per_side": 3}, {"shifts_per_side": 0}]
)
def test_shifts_just_inside_half_the_patch_are_accepted(patch):
    validate({"luna16": {"patch": patch}})


def test_odd_patch_size_and_empty_window_are_rejected():
    with pytest.raises(ConfigError, match="luna16.patch.size"):
        validate({"luna16": {"patch": {"size": 67}}})
    with pytest.raises(ConfigError, match="luna16.normalize"):
        validate({"luna16": {"normalize": {"hu_min": 400.0, "hu_max": 400.0}}})


def test_validate_does_not_need_a_copy(defaults):
    again = validate(copy.deepcopy(defaults))
    assert again == defaults


def test_load_config_names_the_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"luna16": {"negatives": {"ratio": 2}}}))
    assert load_config(good)["luna16"]["negatives"]["ratio"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"luna16": {"patch": {"size": "big"}}}))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(bad) in str(err.value) and "luna16.patch.size" in str(err.value)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)


def test_the_shipped_config_is_valid():
    cfg = load_config(REPO / "config" / "config.yaml")
    assert cfg["luna16"]["patch"]["size"] == 68


# ---------------------------------------------------------------- settings objects and files
def test_every_schema_default_reaches_the_validated_config():
    """Each key with a default in the schema is filled in, at any depth (the schema is the only home)."""
    from ctpatch.settings import schema

    def walk(node, value, path):
        node = {**schema()["$defs"]["codec"], **node} if node.get("$ref") else node
        for key, sub in node.get("properties", {}).items():
            if "default" in sub:
                assert key in value, ".".join(path + [key])
                if "properties" in sub:
                    walk(sub, value[key], path + [key])

    for mode in ("luna16", "ldct"):
        walk(schema(), validate({"mode": mode}), [])


def test_settings_are_read_only_and_json_serialisable():
    import json

    from ctpatch.settings import Settings

    s = Settings({"patch": {"size": 68, "directions": ["x", "y"]}})
    with pytest.raises(TypeError, match="read-only"):
        s["patch"]["size"] = 1
    with pytest.raises(TypeError, match="read-only"):
        s.update(x=1)
    assert s["patch"]["directions"] == ("x", "y")
    assert json.loads(json.dumps(s)) == {"patch": {"size": 68, "directions": ["x", "y"]}}
    mutable = s.to_dict()
    mutable["patch"]["size"] = 1
    assert s["patch"]["size"] == 68


def test_a_scope_changes_only_with_its_own_keys():
    from ctpatch.settings import scope_settings

    base = validate({})
    other = validate({"luna16": {"patch": {"size": 72}, "negatives": {"ratio": 2}}})
    assert scope_settings(base, "convert") == scope_settings(other, "convert")
    assert scope_settings(base, "check") == scope_settings(other, "check")
    assert scope_settings(base, "patches") != scope_settings(other, "patches")
    resampled = validate({"luna16": {"resample": {"spacing_mm": 1.0}}})
    assert scope_settings(base, "convert") != scope_settings(resampled, "convert")
    assert scope_settings(base, "convert")["resample"]["spacing_mm"] == 1.25


def test_settings_file_round_trip_and_scope_check(tmp_path):
    from ctpatch.settings import read_settings, scope_settings, write_settings

    config = validate({"mode": "ldct", "seed": 4, "ldct": {"random_n": 7}})
    path = tmp_path / "s" / "pairs.json"
    write_settings(scope_settings(config, "pairs"), path, "pairs")
    s = read_settings(path, scope="pairs")
    assert s["random_n"] == 7 and s["seed"] == 4 and s["pair_by"] == "position"
    assert list(path.parent.iterdir()) == [path]  # the temporary file was renamed
    with pytest.raises(ConfigError, match=r"pairs\.json: expected settings of scope 'patches', got 'pairs'"):
        read_settings(path, scope="patches")
    with pytest.raises(ConfigError, match="settings file not found"):
        read_settings(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"seed": 1}')
    with pytest.raises(ConfigError, match="bad.json: not a ctpatch settings file"):
        read_settings(tmp_path / "bad.json")


def test_unknown_scope_is_named():
    from ctpatch.settings import scope_settings

    with pytest.raises(ConfigError, match="expected one of .*'pairs'.*got 'convert'"):
        scope_settings(validate({"mode": "ldct"}), "convert")


def test_section_fills_and_checks_one_section():
    from ctpatch.settings import section

    demo = section("demo", {"subsets": 1})
    assert demo["subsets"] == 1 and demo["size_xy"] == 512
    with pytest.raises(ConfigError, match="demo.size_xy"):
        section("demo", {"size_xy": 8})


def test_every_preset_writes_into_a_results_folder_and_logs_of_its_own(monkeypatch):
    """Issue 22: the presets wrote into the default run's results/<mode>/ and shared logs/."""
    from ctpatch.settings import logs_folder

    monkeypatch.chdir(REPO)  # relative results folders are the working folder's
    presets = sorted((REPO / "config").glob("*.yaml"))
    assert {p.name for p in presets} >= {"config.yaml", "ldct.yaml", "reference-luna16.yaml", "reference-ldct.yaml"}
    results = {p.name: load_config(REPO / "config" / "config.yaml", p)["results"] for p in presets}
    assert len(set(results.values())) == len(results), results
    assert results["config.yaml"] == "results"
    logs = {name: logs_folder(r) for name, r in results.items()}
    assert len(set(logs.values())) == len(logs), logs
    assert logs["reference-luna16.yaml"] == "logs/results/reference-luna16"
    for name, path in results.items():  # the file's own comment says where it writes
        if name != "config.yaml":
            assert f"Writes {path}/" in (REPO / "config" / name).read_text(), name


def test_logs_folders_of_two_results_folders_never_meet(tmp_path, monkeypatch):
    from ctpatch.settings import logs_folder

    monkeypatch.chdir(tmp_path)
    inside = {logs_folder(r) for r in ("results", "results/a", "./results/b/", "other")}
    assert inside == {"logs/results", "logs/results/a", "logs/results/b", "logs/other"}
    outside = [logs_folder(str(tmp_path.parent / "x" / "results")), logs_folder(str(tmp_path.parent / "y" / "results"))]
    assert outside[0] != outside[1] and all(o.startswith("logs/results-") for o in outside)
    assert logs_folder(str(tmp_path / "results")) == "logs/results"  # the same folder, named absolutely
