# Config validation, input functions (get_*), the final targets and wildcard constraints.

import json
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import ctpatch.settings as cfg
from ctpatch.settings.types import Config, build
import ctpatch.ldct.discover as ldct_discover
import ctpatch.luna16.discover as luna16_discover
from ctpatch.io.folders import DiscoveryError


def refuse(message):
    """Stop parsing with one `error:` line naming the key or file (no traceback), status 1."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


try:
    cfg.validate(config)  # the schema's defaults are filled in; a bad value stops here with its key
except cfg.ConfigError as exc:
    refuse(exc)
CFG = build(Config, config)  # the validated config, typed and frozen, built once

RES = config["results"]
MODE = config["mode"]
LUNA = config["luna16"]
DEMO_ROOT = f"{RES}/demo/luna16"


def q(value):
    """A value as one shell word (JSON for dicts and lists)."""
    return shlex.quote(value if isinstance(value, str) else json.dumps(value, sort_keys=True))


# ---------------------------------------------------------------- settings files (ctpatch.settings)
def get_settings_file(scope):
    """The settings file of one scope of this mode (rule write_settings), e.g. ``patches``."""
    return f"{RES}/{MODE}/settings/{scope}.json"


def get_scope_settings_text(wildcards):
    return cfg.settings_text(cfg.scope_settings(config, wildcards.scope), wildcards.scope)


# ---------------------------------------------------------------- LUNA16 inputs
def get_demo_folder(wildcards, output):
    """The demo data set's folder: the one holding CSVFILES/ (inferred from the output)."""
    return str(Path(output.annotations).parents[1])


def luna_root():
    return cfg.luna_root(config)


def luna_table(key):
    return cfg.luna_table(config, key)


def _discover(find):
    """``find(config)`` from ctpatch.luna16.discover, or one `error:` line naming the key and folder."""
    try:
        return find(CFG)
    except DiscoveryError as exc:
        refuse(str(exc))


_FOUND = _discover(luna16_discover.luna16_scans) if MODE == "luna16" else luna16_discover.Found({})
for _warning in _FOUND.warnings:
    print(f"warning: {_warning}", file=sys.stderr)
LUNA_SCANS = _FOUND.scans


def get_luna_subsets():
    return list(LUNA_SCANS)


def get_scan_data_file(mhd):
    """The data file a scan's header names (.raw or .zraw); `<uid>.raw` while the header is not there."""
    from ctpatch.io.mhd import data_file_of

    return str(data_file_of(mhd))


def get_luna_scan_files(wildcards=None):
    root = luna_root()
    mhds = [f"{root}/{s}/{uid}.mhd" for s, uids in LUNA_SCANS.items() for uid in uids]
    return [f for mhd in mhds for f in (mhd, get_scan_data_file(mhd))]


def get_scan_files(wildcards):
    """One scan's header and its data file, as the header names it (.raw, .zraw, ...)."""
    mhd = f"{luna_root()}/{wildcards.subset}/{wildcards.uid}.mhd"
    return {"mhd": mhd, "data": get_scan_data_file(mhd)}


def get_volumes(wildcards):
    return [
        f"{RES}/luna16/volumes/{wildcards.group}/{uid}.{ext}"
        for uid in LUNA_SCANS[wildcards.group]
        for ext in ("json", "npy")
    ]


def get_sidecars(wildcards):
    return [f"{RES}/luna16/volumes/{wildcards.group}/{uid}.json" for uid in LUNA_SCANS[wildcards.group]]


# ---------------------------------------------------------------- per-mode dispatch
def get_groups():
    return get_luna_subsets() if MODE == "luna16" else get_ldct_patients()


# ---------------------------------------------------------------- LDCT inputs
LDCT = config["ldct"]


LDCT_PATIENTS = _discover(ldct_discover.ldct_patients) if MODE == "ldct" else []


def get_ldct_patients():
    return LDCT_PATIENTS


def get_pair_table(group):
    return f"{RES}/ldct/pairs/{group}.tsv"


def get_patient_folders(wildcards):
    """The patient's low-dose (input) and full-dose (target) folders."""
    patient = f"{LDCT['root']}/{wildcards.group}"
    return {"inputs": f"{patient}/{LDCT['input_dir']}", "targets": f"{patient}/{LDCT['target_dir']}"}


def get_all_patient_folders(wildcards):
    return [f for g in get_ldct_patients() for f in get_patient_folders(SimpleNamespace(group=g)).values()]


def get_patient_dir(wildcards):
    return f"{LDCT['root']}/{wildcards.group}"


# ---------------------------------------------------------------- one job per subset, or one over all patients
# LUNA16 runs extraction, verification and pictures once per subset (a subset is hours of work).
# LDCT runs each of them, and the slice pairing, as ONE job over all patients, with the same
# per-patient files: a patient is a few slices, and one job each spent more time starting Python
# and an MPI world than cutting patches (issue 14).  The job's command names the patients
# (``--groups L096 L143 ...``) and gives the per-patient arguments once, with ``{group}`` standing
# for the patient (ctpatch.cli.batched), so it stays short for any number of patients.
BATCHED = MODE == "ldct"
GROUP = "{group}"  # ctpatch.cli.GROUP


def per_group(pattern):
    """An output of a per-group step: the pattern (LUNA16, one job per subset) or every patient's file (LDCT)."""
    return expand(pattern, group=get_groups()) if BATCHED else pattern


def get_log(step):
    """The log of a per-group step: one per subset (LUNA16) or one for the job over all patients (LDCT)."""
    return f"logs/{MODE}/{step}.log" if BATCHED else f"logs/{MODE}/{step}/{{group}}.log"


def get_group_args(step):
    """The per-group arguments of a step's command, quoted: the subset's own (LUNA16), or (LDCT)
    ``--groups`` and every patient's name followed by the arguments with ``{group}`` in place of the name."""

    def args(wildcards, input, output):
        g = GROUP if BATCHED else wildcards.group
        files = " ".join(map(q, get_patch_files(g)))
        inputs = q(json.dumps(extraction_inputs(g), sort_keys=True))
        if step == "pair_slices":
            words = f"--patient-dir {q(get_patient_dir(SimpleNamespace(group=g)))} --table-out {q(get_pair_table(g))} "
            words += f"--report-out {q(f'{RES}/ldct/pairs/{g}.json')}"
        elif step == "extract_patches":
            words = f"--group {q(g)} --out {files} --inputs {inputs}"
        elif step == "verify_patches":
            if MODE == "luna16":
                scans = " ".join(map(q, LUNA_SCANS[g]))
                words = f"--nodules {q(f'{RES}/luna16/labels/{g}/nodules.tsv')} --scans {scans}"
            else:
                words = f"--pairs {q(get_pair_table(g))}"
            words += f" --patches {files} --inputs {inputs} --report-out {q(f'{RES}/{MODE}/report/{g}.verify.json')}"
        else:
            words = f"--patches {files} --out {q(f'{RES}/{MODE}/sanity/{g}.png')}"
        return f"--groups {' '.join(map(q, get_groups()))} {words}" if BATCHED else words

    return args


# ---------------------------------------------------------------- extraction, verification
def get_extract_inputs(wildcards):
    # plan: the free-space check before any work needs the estimated output size (one copy: no shards)
    files = {"settings": get_settings_file("patches"), "plan": f"{RES}/{MODE}/report/plan.json"}
    if MODE == "luna16":
        files["data"] = get_volumes(wildcards) + [
            f"{RES}/luna16/labels/{wildcards.group}/masks",
            f"{RES}/luna16/labels/{wildcards.group}/nodules.tsv",
        ]
        if LUNA["negatives"]["strategy"] == "candidates":
            files["data"].append(luna_table("candidates"))
    else:
        files["data"] = [get_pair_table(g) for g in get_groups()]
    return files


def extraction_inputs(group):
    """The input paths of one group's extraction (ctpatch.<mode>.extract --inputs; verify regenerates its sample from them)."""
    if MODE == "luna16":
        return {
            "sidecars": get_sidecars(SimpleNamespace(group=group)),
            "masks_dir": f"{RES}/luna16/labels/{group}/masks",
            "nodules": f"{RES}/luna16/labels/{group}/nodules.tsv",
            "candidates": luna_table("candidates") if LUNA["negatives"]["strategy"] == "candidates" else None,
        }
    return {"pairs": [get_pair_table(group)]}


def get_job_patch_files(wildcards):
    """The patch files a per-group job reads: its subset's (LUNA16) or every patient's (LDCT)."""
    return [f for g in (get_groups() if BATCHED else [wildcards.group]) for f in get_patch_files(g)]


def get_verify_inputs(wildcards):
    """The files, the table(s) they are checked against, and the extraction's inputs (a sample is regenerated)."""
    return {
        "settings": get_settings_file("patches"),
        "data": get_extract_inputs(wildcards)["data"],
        "patches": get_job_patch_files(wildcards),
    }


def get_sanity_outputs():
    """The sanity pictures, one per group, each in the report under its group."""
    flags = dict(caption="../report/sanity.rst", category="Patch pictures")
    if BATCHED:
        return [as_report(f"{RES}/{MODE}/sanity/{g}.png", subcategory=g, **flags) for g in get_groups()]
    return as_report(f"{RES}/{MODE}/sanity/{{group}}.png", subcategory="{group}", **flags)


as_report = report  # Snakemake's report() flag; a line starting with `report` would be read as the directive


# LUNA16 writes one file per subset; LDCT one per patient, or nsplit parts (with output.combined
# the nsplit parts are the combined files', and each patient gets one file)
LDCT_COMBINED = MODE == "ldct" and LDCT["output"]["combined"] != "none"
NSPLIT_SUFFIXES = (
    [""]
    if MODE == "luna16" or LDCT["output"]["nsplit"] == 1
    else [f".part{i}" for i in range(LDCT["output"]["nsplit"])]
)
PART_SUFFIXES = [""] if LDCT_COMBINED else NSPLIT_SUFFIXES


def get_combined_files():
    return [f"{RES}/ldct/combined/all{sfx}.h5" for sfx in NSPLIT_SUFFIXES] if LDCT_COMBINED else []


def get_patch_files(group):
    return [f"{RES}/{MODE}/patches/{group}{sfx}.h5" for sfx in PART_SUFFIXES]


def get_verify_reports(wildcards):
    return [f"{RES}/{MODE}/report/{g}.verify.json" for g in get_groups()]


def get_plan_inputs(wildcards):
    """The plan comes after the pre-flight check (LUNA16) or the slice pairing (LDCT): a bad input is
    reported once, by the step that names the file, not a second time by the plan."""
    checked = [f"{RES}/luna16/checks/scans.tsv"] if MODE == "luna16" else [get_pair_table(g) for g in get_groups()]
    return {"checked": checked, "settings": get_settings_file("plan")}


def get_accounting_inputs(wildcards):
    subsets = get_luna_subsets()
    return {
        "annotations": luna_table("annotations"),
        "nodules": [f"{RES}/luna16/labels/{g}/nodules.tsv" for g in subsets],
        "patches": [f"{RES}/luna16/patches/{g}.h5" for g in subsets],
        "settings": get_settings_file("patches"),
    }


def get_final_output():
    groups = get_groups()
    return (
        [f"{RES}/{MODE}/report/{g}.verify.json" for g in groups]
        + [f for g in groups for f in get_patch_files(g)]
        + [f"{RES}/{MODE}/sanity/{g}.png" for g in groups]
        + [f"{RES}/{MODE}/report/verification.tsv", f"{RES}/{MODE}/report/config.yaml", f"{RES}/{MODE}/report/plan.txt"]
        + get_combined_files()
        + ([f"{RES}/ldct/report/combined.json"] if LDCT_COMBINED else [])
        + (
            [f"{RES}/luna16/report/nodule_accounting.tsv"]
            + [f"{RES}/luna16/report/{g}.{what}.png" for g in groups for what in ("nodules", "negatives")]
            if MODE == "luna16"
            else []
        )
    )


wildcard_constraints:
    scope="|".join(cfg.SCOPES[MODE]),
    group=r"[A-Za-z0-9_.-]+",
    uid=r"[0-9.]+",
    subset=r"subset[0-9]+",
