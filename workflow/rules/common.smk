# Config validation, the run's groups (the one place where the modes differ), input functions
# (get_*), the final targets and wildcard constraints.  Each mode's rules are in luna16.smk and
# ldct.smk; the functions stay here (Snakemake's lint wants rules and functions apart).

import shutil
import sys
from pathlib import Path

import ctpatch.settings as cfg
from ctpatch.settings.types import Config, build
import ctpatch.ldct.discover as ldct_discover
import ctpatch.luna16.discover as luna16_discover
import ctpatch.report.terminal as terminal
from ctpatch.io.folders import DiscoveryError
from ctpatch.luna16.demo import stale_demo_outputs
from ctpatch.store.atomic import ResultsLock


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
LDCT = config["ldct"]
DEMO_ROOT = f"{RES}/demo/luna16"
# every results folder has its own logs (logs/<results>/...): two configurations never share a log file
LOGS = cfg.logs_folder(RES)


# ---------------------------------------------------------------- settings files (ctpatch.settings)
def get_settings_file(scope):
    """The settings file of one scope of this mode, e.g. ``patches`` (written below, when parsing)."""
    return f"{RES}/{MODE}/settings/{scope}.json"


# Each scope's settings file is written when the workflow is parsed, and only when its text changed:
# its time stamp then carries a changed setting to every step that reads it, whatever the rerun
# triggers (--rerun-triggers mtime, a second clone on the same results, no .snakemake metadata).
for _scope in cfg.SCOPES[MODE]:
    try:
        cfg.sync_settings(cfg.scope_settings(config, _scope), get_settings_file(_scope), _scope)
    except OSError as exc:
        refuse(f"{get_settings_file(_scope)}: cannot write the settings file: {exc.strerror or exc}")


# One run at a time writes a results folder, whatever its working directory (Snakemake's own lock is
# per working directory): taken when the run starts (not by a dry run), released when it ends.
RESULTS_LOCK = ResultsLock(RES)


def check_ranks():
    """MPI ranks never exceed the cores Snakemake was given: the rule's threads (extract.tasks) are capped by
    --cores and its ranks are its threads; a --set-resources tasks=N above --cores on this machine is refused.
    (Cluster executors place the ranks on their nodes: not checked there.)"""
    tasks = workflow.resource_settings.overwrite_resources.get("extract_patches", {}).get("tasks")
    tasks = getattr(tasks, "value", tasks)  # a Resource from the command line, or a plain value
    cores = workflow.resource_settings.cores
    if workflow.local_exec and isinstance(tasks, int) and isinstance(cores, int) and tasks > cores:
        refuse(
            f"extract_patches: --set-resources extract_patches:tasks={tasks} asks for more MPI ranks than the "
            f"{cores} core(s) of --cores; give --cores {tasks} or fewer tasks"
        )


def prune_stale_demo():
    """The demo data set is remade when its settings change (demo.*, seed): the scans of the old one (its
    generator removes them) and what was made of them (converted volumes, subsets no longer there) go."""
    if MODE != "luna16" or LUNA["root"] != "demo":
        return
    stale = stale_demo_outputs(f"{RES}/luna16", LUNA_SCANS)
    for path in stale:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if stale:
        print(
            f"ctpatch: removed {len(stale)} file(s) made from an earlier demo data set (its settings or seed changed)",
            file=sys.stderr,
        )


onstart:
    try:
        RESULTS_LOCK.acquire()
    except OSError as exc:
        refuse(exc)
    check_ranks()
    prune_stale_demo()


onerror:
    # Snakemake ends with "CalledProcessError ... check log file(s)": say what the failed steps themselves said
    summary = terminal.failure_summary(log)
    if summary:
        print(summary, file=sys.stderr)


onsuccess:
    # where the patch files are, what they hold, and the line that reads them
    print(terminal.run_summary(get_all_patch_files() + MODE_FILES, MODE, RES, LOGS), file=sys.stderr)


# ---------------------------------------------------------------- the groups of the run, per mode
def _discover(find):
    """``find(config)`` (ctpatch.luna16.discover, ctpatch.ldct.discover), or one `error:` line naming the
    key and folder."""
    try:
        return find(CFG)
    except DiscoveryError as exc:
        refuse(str(exc))


# GROUPS: LUNA16 subsets (one extraction, verification, picture job each: a subset is hours of work)
# or LDCT patients (each step ONE job over all patients: a patient is a few slices, and one job each
# spent more time starting Python and an MPI world than cutting patches; issue 14).
# PART_SUFFIXES: a group's patch files.  CHECKED: what the plan waits for (a bad input is reported
# once, by the step that names the file).  MODE_TARGETS: the mode's own final targets.
if MODE == "luna16":
    _FOUND = _discover(luna16_discover.luna16_scans)
    for _warning in _FOUND.warnings:
        print(f"warning: {_warning}", file=sys.stderr)
    LUNA_SCANS = _FOUND.scans  # subset -> its series uids
    GROUPS = list(LUNA_SCANS)
    PART_SUFFIXES = [""]
    CHECKED = [f"{RES}/luna16/checks/scans.tsv"]
    MODE_TARGETS = [f"{RES}/luna16/report/nodule_accounting.tsv"] + [
        f"{RES}/luna16/report/{g}.{what}.png" for g in GROUPS for what in ("nodules", "negatives")
    ]
    MODE_FILES = []  # patch files besides the groups
else:
    GROUPS = _discover(ldct_discover.ldct_patients)
    # one file per patient, or nsplit parts; with output.combined the nsplit parts are the combined
    # files', and each patient gets one file
    LDCT_COMBINED = LDCT["output"]["combined"] != "none"
    NSPLIT = LDCT["output"]["nsplit"]
    NSPLIT_SUFFIXES = [""] if NSPLIT == 1 else [f".part{i}" for i in range(NSPLIT)]
    PART_SUFFIXES = [""] if LDCT_COMBINED else NSPLIT_SUFFIXES
    CHECKED = [f"{RES}/ldct/pairs/{g}.tsv" for g in GROUPS]
    COMBINED_FILES = [f"{RES}/ldct/combined/all{sfx}.h5" for sfx in NSPLIT_SUFFIXES] if LDCT_COMBINED else []
    MODE_TARGETS = COMBINED_FILES + ([f"{RES}/ldct/report/combined.json"] if LDCT_COMBINED else [])
    MODE_FILES = COMBINED_FILES  # patch files besides the groups


def get_extract_tasks(wildcards, threads):
    """The extraction's MPI ranks.  On this machine its threads: extract.tasks capped by --cores.  Under a
    cluster executor (SLURM) extract.tasks, the same in the submitting process and in the job, whatever
    cores the job's node shows (a profile may set tasks, profiles/slurm does)."""
    return threads if workflow.local_exec else config["extract"]["tasks"]


def get_patch_files(group):
    """One group's patch file(s): ``results/MODE/patches/GROUP.h5`` or its ``.partK.h5`` files."""
    return [f"{RES}/{MODE}/patches/{group}{sfx}.h5" for sfx in PART_SUFFIXES]


def get_all_patch_files():
    """Every group's patch files, in group order (each group's parts together)."""
    return [f for g in GROUPS for f in get_patch_files(g)]


# ---------------------------------------------------------------- LUNA16 inputs (luna16.smk, demo.smk)
def get_demo_folder(wildcards, output):
    """The demo data set's folder: the one holding CSVFILES/ (inferred from the output)."""
    return str(Path(output.annotations).parents[1])


def luna_root():
    return cfg.luna_root(config)


def luna_table(key):
    return cfg.luna_table(config, key)


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


def get_sidecars(wildcards):
    """The subset's converted scans: their JSON sidecars, in uid order."""
    return [f"{RES}/luna16/volumes/{wildcards.subset}/{uid}.json" for uid in LUNA_SCANS[wildcards.subset]]


def get_volume_arrays(wildcards):
    """The .npy volume beside each sidecar (read by the extraction through its sidecar)."""
    return [f"{RES}/luna16/volumes/{wildcards.subset}/{uid}.npy" for uid in LUNA_SCANS[wildcards.subset]]


def get_candidates_table(wildcards):
    """candidates.csv, only with negatives.strategy: candidates (else no file)."""
    return [luna_table("candidates")] if LUNA["negatives"]["strategy"] == "candidates" else []


def get_candidates_args(wildcards, input):
    """``--candidates candidates.csv`` when the job reads it, else nothing."""
    return ["--candidates", *input.candidates] if input.candidates else []


def get_accounting_inputs(wildcards):
    return {
        "annotations": luna_table("annotations"),
        "nodules": [f"{RES}/luna16/labels/{g}/nodules.tsv" for g in GROUPS],
        "patches": get_all_patch_files(),
        "settings": get_settings_file("patches"),
        "check": get_settings_file("check"),  # the root and the duplicate policy
    }


# ---------------------------------------------------------------- LDCT inputs (ldct.smk)
def get_pair_tables():
    """Every patient's pair table, in patient order."""
    return [f"{RES}/ldct/pairs/{p}.tsv" for p in GROUPS]


def get_patient_dirs():
    return [f"{LDCT['root']}/{p}" for p in GROUPS]


def get_patient_folders(wildcards=None):
    """Every patient's low-dose (input) and full-dose (target) folder."""
    return [f"{d}/{sub}" for d in get_patient_dirs() for sub in (LDCT["input_dir"], LDCT["target_dir"])]


# ---------------------------------------------------------------- report, final targets
def get_verify_reports(wildcards):
    return [f"{RES}/{MODE}/report/{g}.verify.json" for g in GROUPS]


def get_plan_inputs(wildcards):
    """The plan comes after the pre-flight check (LUNA16) or the slice pairing (LDCT): a bad input is
    reported once, by the step that names the file."""
    return {"checked": CHECKED, "settings": get_settings_file("plan")}


def get_final_output():
    return (
        get_verify_reports(None)
        + get_all_patch_files()
        + [f"{RES}/{MODE}/sanity/{g}.png" for g in GROUPS]
        + [f"{RES}/{MODE}/report/verification.tsv", f"{RES}/{MODE}/report/config.yaml", f"{RES}/{MODE}/report/plan.txt"]
        + MODE_TARGETS
    )


wildcard_constraints:
    scope="|".join(cfg.SCOPES[MODE]),
    uid=r"[0-9.]+",
    subset=r"subset[0-9]+",
