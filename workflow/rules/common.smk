# Config validation, input functions (get_*), the final targets and wildcard constraints.

import json
import shlex
from pathlib import Path

from ctpatch.config import validate as validate_config

validate_config(config)  # the schema's defaults are filled in; a bad value stops here with its key

RES = config["results"]
MODE = config["mode"]
LUNA = config["luna16"]
DEMO_ROOT = f"{RES}/demo/luna16"


def q(value):
    """A value as one shell word (JSON for dicts and lists)."""
    return shlex.quote(value if isinstance(value, str) else json.dumps(value, sort_keys=True))


# ---------------------------------------------------------------- LUNA16 inputs
def luna_root():
    return DEMO_ROOT if LUNA["root"] == "demo" else LUNA["root"]


def luna_table(key):
    path = Path(LUNA[key])
    return str(path if path.is_absolute() else Path(luna_root()) / path)


def _discover_luna():
    """subset -> sorted series uids, known at parse time (demo: from the plan, no voxels made)."""
    if LUNA["root"] == "demo":
        from ctpatch.demo import plan_scans

        scans = {}
        for plan in plan_scans(config["demo"], config["seed"]):
            scans.setdefault(plan.subset, []).append(plan.series_uid)
    else:
        root = Path(LUNA["root"])
        if not root.is_dir():
            raise ValueError(f"luna16.root: folder {root} not found")
        scans = {d.name: [p.stem for p in d.glob("*.mhd")] for d in root.glob("subset*") if d.is_dir()}
    wanted = LUNA["subsets"] or sorted(scans, key=lambda s: int(s[len("subset"):]))
    missing = [s for s in wanted if not scans.get(s)]
    if missing and LUNA["root"] != "demo":
        # left to check_luna, which names every empty or missing folder; no job is planned for them
        pass
    if not wanted:
        raise ValueError(f"luna16.root: no subsetK folders under {luna_root()}")
    return {s: sorted(scans.get(s, [])) for s in wanted}


LUNA_SCANS = _discover_luna() if MODE == "luna16" else {}


def get_luna_subsets():
    return list(LUNA_SCANS)


def get_luna_scan_files(wildcards=None):
    root = luna_root()
    return [f"{root}/{s}/{uid}.{ext}" for s, uids in LUNA_SCANS.items() for uid in uids for ext in ("mhd", "raw")]


def get_volumes(wildcards):
    return [f"{RES}/luna16/volumes/{wildcards.group}/{uid}.{ext}" for uid in LUNA_SCANS[wildcards.group] for ext in ("json", "npy")]


def get_sidecars(wildcards):
    return [f"{RES}/luna16/volumes/{wildcards.group}/{uid}.json" for uid in LUNA_SCANS[wildcards.group]]


def luna_settings():
    """Everything that determines a LUNA16 patch; recorded in the patch file so it can be regenerated."""
    s = {k: LUNA[k] for k in ("patch", "negatives", "output", "normalize", "resample")}
    s.update(mode="luna16", seed=config["seed"], buffer_patches=config["extract"]["buffer_patches"],
             root=luna_root(), annotations=luna_table("annotations"), candidates=luna_table("candidates"))
    return s


# ---------------------------------------------------------------- per-mode dispatch
def get_groups():
    return get_luna_subsets() if MODE == "luna16" else get_ldct_patients()


# ---------------------------------------------------------------- LDCT inputs
LDCT = config["ldct"]


def _discover_ldct():
    """The patient folders holding the input folder (or the configured list), known at parse time."""
    root = Path(LDCT["root"])
    if not root.is_dir():
        raise ValueError(f"ldct.root: folder {root} not found")
    found = sorted(d.name for d in root.iterdir() if (d / LDCT["input_dir"]).is_dir())
    wanted = LDCT["patients"] or found
    missing = [p for p in wanted if p not in found]
    if missing:
        raise ValueError(f"ldct.patients: {missing} have no folder {LDCT['input_dir']!r} under {root}")
    if not wanted:
        raise ValueError(f"ldct.root: no patient folder under {root} holds a {LDCT['input_dir']!r} folder")
    return wanted


LDCT_PATIENTS = _discover_ldct() if MODE == "ldct" else []


def get_ldct_patients():
    return LDCT_PATIENTS


def ldct_settings():
    """Everything that determines an LDCT patch; recorded in the patch file."""
    s = {k: v for k, v in LDCT.items() if k not in ("patients",)}
    s.update(mode="ldct", seed=config["seed"], buffer_patches=config["extract"]["buffer_patches"])
    return s


def mode_settings():
    return luna_settings() if MODE == "luna16" else ldct_settings()


def get_pair_table(group):
    return f"{RES}/ldct/pairs/{group}.tsv"


# ---------------------------------------------------------------- extraction, merge, verification
def get_extract_inputs(wildcards):
    if MODE == "luna16":
        files = get_volumes(wildcards) + [f"{RES}/luna16/labels/{wildcards.group}/masks", f"{RES}/luna16/labels/{wildcards.group}/nodules.tsv"]
        if LUNA["negatives"]["strategy"] == "candidates":
            files.append(luna_table("candidates"))
        return files
    return [get_pair_table(wildcards.group)]


def get_extract_params(wildcards):
    if MODE == "luna16":
        inputs = {"sidecars": get_sidecars(wildcards), "masks_dir": f"{RES}/luna16/labels/{wildcards.group}/masks",
                  "nodules": f"{RES}/luna16/labels/{wildcards.group}/nodules.tsv",
                  "candidates": luna_table("candidates") if LUNA["negatives"]["strategy"] == "candidates" else None}
    else:
        inputs = {"pairs": [get_pair_table(wildcards.group)]}
    return {"inputs": q(inputs), "settings": q(mode_settings())}


def get_verify_inputs(wildcards):
    if MODE == "luna16":
        return {"table": f"{RES}/luna16/labels/{wildcards.group}/nodules.tsv"}
    return {"table": get_pair_table(wildcards.group)}


def get_verify_args(wildcards):
    if MODE == "luna16":
        scans = " ".join(LUNA_SCANS[wildcards.group])
        return f"--nodules {RES}/luna16/labels/{wildcards.group}/nodules.tsv --scans {scans}"
    return f"--pairs {get_pair_table(wildcards.group)}"


def output_settings():
    return (LUNA if MODE == "luna16" else LDCT)["output"]


# LUNA16 writes one file per subset; LDCT one per patient, or nsplit parts (with output.combined
# the nsplit parts are the combined files', and each patient gets one file)
LDCT_COMBINED = MODE == "ldct" and LDCT["output"]["combined"] != "none"
NSPLIT_SUFFIXES = [""] if MODE == "luna16" or LDCT["output"]["nsplit"] == 1 else [
    f".part{i}" for i in range(LDCT["output"]["nsplit"])
]
PART_SUFFIXES = [""] if LDCT_COMBINED else NSPLIT_SUFFIXES


def get_combined_files():
    return [f"{RES}/ldct/combined/all{sfx}.h5" for sfx in NSPLIT_SUFFIXES] if LDCT_COMBINED else []


def get_patch_files(group):
    return [f"{RES}/{MODE}/patches/{group}{sfx}.h5" for sfx in PART_SUFFIXES]


def get_final_output():
    groups = get_groups()
    return (
        [f"{RES}/{MODE}/reports/{g}.verify.json" for g in groups]
        + [f for g in groups for f in get_patch_files(g)]
        + [f"{RES}/{MODE}/sanity/{g}.png" for g in groups]
        + [f"{RES}/{MODE}/report/verification.tsv", f"{RES}/{MODE}/report/config.yaml", f"{RES}/{MODE}/report/plan.txt"]
        + get_combined_files()
        + ([f"{RES}/ldct/reports/combined.json"] if LDCT_COMBINED else [])
        + (
            [f"{RES}/luna16/report/nodule_accounting.tsv"]
            + [f"{RES}/luna16/report/{g}.{what}.png" for g in groups for what in ("nodules", "negatives")]
            if MODE == "luna16"
            else []
        )
    )


wildcard_constraints:
    group=r"[A-Za-z0-9_.-]+",
    uid=r"[0-9.]+",
    subset=r"subset[0-9]+",
