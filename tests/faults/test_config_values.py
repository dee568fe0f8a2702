"""Fault catalog: config values, refused when the config is read (before Snakemake plans a job),
the first line naming the config file and the key."""

from __future__ import annotations

import pytest
import yaml

from ctpatch.settings import ConfigError, load_config

CONFIG_CASES = {
    "mode_unknown": ({"mode": "luna"}, "mode"),
    "seed_negative": ({"seed": -1}, "seed"),
    "results_not_text": ({"results": 5}, "results"),
    "unknown_key": ({"reslts": "x"}, "reslts"),
    "patch_size_odd": ({"luna16": {"patch": {"size": 67, "stride": 4, "shifts_per_side": 2}}}, "luna16.patch.size"),
    "patch_size_text": ({"luna16": {"patch": {"size": "x"}}}, "luna16.patch.size"),
    "shifts_leave_the_nodule": ({"luna16": {"patch": {"stride": 10, "shifts_per_side": 4}}}, "luna16.patch"),
    "window_inverted": ({"luna16": {"normalize": {"hu_min": 400, "hu_max": -1000}}}, "luna16.normalize"),
    "plausibility_share_above_1": (
        {"luna16": {"plausibility": {"min_air_share": 2}}},
        "luna16.plausibility.min_air_share",
    ),
    "duplicates_unknown": ({"luna16": {"duplicate_annotations": "keep"}}, "luna16.duplicate_annotations"),
    "subset_name_not_subsetN": ({"luna16": {"subsets": ["subset0_old"]}}, "luna16.subsets"),
    "tasks_zero": ({"extract": {"tasks": 0}}, "extract.tasks"),
    "ldct_patient_hostile_name": ({"mode": "ldct", "ldct": {"patients": ["L0; rm -rf x"]}}, "ldct.patients"),
    "ldct_free_size_without_edge": ({"mode": "ldct", "ldct": {"patch": {"code": None}}}, "ldct.patch"),
    "results_empty": ({"results": ""}, "results"),
    "results_filesystem_root": ({"results": "/"}, "results"),
    "results_inside_the_ldct_root": (
        {"mode": "ldct", "ldct": {"root": "/data/ldct"}, "results": "/data/ldct/results"},
        "results",
    ),
    "results_inside_the_luna16_root": ({"luna16": {"root": "/data/LUNA16"}, "results": "/data/LUNA16"}, "results"),
    "seed_beyond_int64": ({"seed": 2**64}, "seed"),
    # issue 22: an ldct section without mode: ldct ran the LUNA16 demo quietly
    "ldct_keys_without_mode_ldct": ({"ldct": {"root": "/data/ldct", "patch": {"code": "p42"}}}, "ldct.root"),
    "ldct_keys_with_mode_luna16": ({"mode": "luna16", "ldct": {"pair_by": "name"}}, "set mode: ldct"),
    "ldct_sr_stride_below_padding": (
        {"mode": "ldct", "ldct": {"super_resolution": {"enabled": True, "scale": 4}}},
        "ldct.patch and super_resolution.scale",
    ),
    "ldct_free_stride_below_padding": (
        {"mode": "ldct", "ldct": {"patch": {"code": None, "edge": 20, "padding": 10}}},
        "ldct.patch",
    ),
}


@pytest.mark.parametrize("case", CONFIG_CASES, ids=str)
def test_config_value_refused_naming_file_and_key(case, tmp_path):
    values, key = CONFIG_CASES[case]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(values))
    before = path.read_bytes()
    with pytest.raises(ConfigError) as err:
        load_config(path)
    first = str(err.value).splitlines()[0]
    assert first.startswith(str(path)) and key in first, first
    assert path.read_bytes() == before


def test_config_that_is_not_a_mapping_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping") as err:
        load_config(path)
    assert str(err.value).startswith(str(path))
