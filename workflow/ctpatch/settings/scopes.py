"""What each step depends on (a *scope*), and the settings files the workflow writes and the steps read."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from ctpatch.settings.frozen import Settings, _thaw
from ctpatch.settings.types import LdctPatches, LunaPatches, build
from ctpatch.settings.validate import MODES, ConfigError, default_config, validate

SCOPES = {
    "luna16": ("check", "convert", "demo", "patches", "plan", "run"),
    "ldct": ("pairs", "patches", "plan"),
}
#: scopes whose files no rule declares as an input: settings that decide whether a step goes on, never a
#: byte of its output (a changed policy reruns nothing); the steps read them by name
UNTRACKED = ("run",)


SETTINGS_FORMAT = "ctpatch-settings/1"


# ------------------------------------------------------------------------------ paths the config names
def luna_root(config: Mapping) -> str:
    """The LUNA16 folder: ``luna16.root``, or the demo data set's folder under ``results``."""
    root = config["luna16"]["root"]
    return f"{config['results']}/demo/luna16" if root == "demo" else root


def logs_folder(results: str) -> str:
    """The folder of one results folder's logs, under ``logs/`` of the working folder: ``logs/<results>`` for a
    results folder inside the working folder (``logs/results``, ``logs/results/reference-luna16``), else
    ``logs/<its name>-<8 hex digits of the sha256 of its absolute path>``.  So two results folders never share
    a log file, and a run's logs are found from its results folder.

    >>> logs_folder("results"), logs_folder("./results/reference-luna16/")
    ('logs/results', 'logs/results/reference-luna16')
    >>> logs_folder("/data/run 1").startswith("logs/run 1-")
    True
    """
    absolute = Path(os.path.abspath(results))
    try:
        inside = absolute.relative_to(Path.cwd())
    except ValueError:
        inside = None
    if inside is not None and inside.parts:
        return str(Path("logs") / inside)
    tag = hashlib.sha256(str(absolute).encode()).hexdigest()[:8]
    return f"logs/{absolute.name or 'root'}-{tag}"


def luna_table(config: Mapping, key: str) -> str:
    """``luna16.annotations`` or ``luna16.candidates`` as a path (relative ones start at the root)."""
    path = Path(config["luna16"][key])
    return str(path if path.is_absolute() else Path(luna_root(config)) / path)


# ------------------------------------------------------------------------------ scopes
#: keys of the ``ldct`` section that choose the slice pairs (scope ``pairs``), not how a pair is cut
LDCT_PAIRING = ("patients", "root", "input_dir", "target_dir", "pair_by", "on_error", "random_n")


def luna16_settings(config: Mapping) -> Settings:
    """Everything that decides a LUNA16 patch from its inputs (scope ``patches``); recorded in each patch
    file with its digest.  No path and nothing of the machine (``extract.*``): the same inputs and
    settings give the same bytes wherever the data and the results are."""
    luna = config["luna16"]
    s = {k: luna[k] for k in ("patch", "negatives", "output", "normalize", "resample", "duplicate_annotations")}
    s.update(mode="luna16", seed=config["seed"])
    return Settings(s)


def ldct_patch_settings(config: Mapping) -> Settings:
    """Everything that decides an LDCT patch from its slice pair (scope ``patches``): the ``ldct`` section
    without the keys that choose the pairs (:data:`LDCT_PAIRING`, the ``pairs`` scope; the pairs
    themselves are recorded as the file's inputs), and the seed."""
    s = {k: v for k, v in config["ldct"].items() if k not in LDCT_PAIRING}
    s.update(mode="ldct", seed=config["seed"])
    return Settings(s)


def mode_settings(config: Mapping) -> Settings:
    """The patch settings of the configured mode."""
    return luna16_settings(config) if config["mode"] == "luna16" else ldct_patch_settings(config)


def scope_settings(config: Mapping, scope: str) -> Settings:
    """The settings one step of the configured mode depends on (see :data:`SCOPES`).

    * luna16 ``check``: what the pre-flight check's tables depend on (root, tables, the duplicate
      policy); ``convert``: resample and normalize (what a volume depends on); ``run``: what decides
      whether a step goes on, never a byte (``unknown_series``, ``plausibility`` and the window its
      checks use): no rule declares it, so a changed policy reruns nothing (:data:`UNTRACKED`);
      ``demo``: the demo data set's settings and seed; ``patches``: :func:`luna16_settings`.
    * ldct ``pairs``: folder names, pairing rule, error policy, random_n and seed;
      ``patches``: :func:`ldct_patch_settings`.
    * ``plan``: the whole validated config (the plan estimates every step).
    """
    mode = config["mode"]
    if scope not in SCOPES[mode]:
        raise ConfigError(f"settings scope: expected one of {list(SCOPES[mode])} in mode {mode!r}, got {scope!r}")
    if scope == "plan":
        s = dict(config)
    elif scope == "patches":
        s = mode_settings(config)
    elif scope == "convert":
        s = {k: config["luna16"][k] for k in ("resample", "normalize")}
    elif scope == "check":
        luna = config["luna16"]
        s = {
            "root": luna_root(config),
            "annotations": luna_table(config, "annotations"),
            "candidates": luna_table(config, "candidates") if luna["negatives"]["strategy"] == "candidates" else None,
            "duplicate_annotations": luna["duplicate_annotations"],
        }
    elif scope == "run":
        luna = config["luna16"]
        s = {k: luna[k] for k in ("unknown_series", "plausibility", "normalize")}
    elif scope == "demo":
        s = {"demo": config["demo"], "seed": config["seed"]}
    else:  # ldct pairs
        ldct = config["ldct"]
        s = {k: ldct[k] for k in ("root", "input_dir", "target_dir", "pair_by", "on_error", "random_n")}
        s["seed"] = config["seed"]
    return Settings({**s, "mode": mode})


def settings_text(settings: Mapping, scope: str) -> str:
    """The text of one scope's settings file (JSON, keys sorted, no trailing newline)."""
    doc = {"format": SETTINGS_FORMAT, "scope": scope, "settings": _thaw(settings)}
    return json.dumps(doc, indent=1, sort_keys=True)


def write_settings(settings: Mapping, path: str | Path, scope: str) -> None:
    """Write one scope's settings as JSON (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(settings_text(settings, scope) + "\n")
    os.replace(tmp, path)


def sync_settings(settings: Mapping, path: str | Path, scope: str) -> bool:
    """Write one scope's settings file when its text differs from the file's (or there is none); return
    whether it was written.  An unchanged file keeps its time stamp, so only a changed setting makes the
    steps that read it look out of date."""
    path = Path(path)
    text = settings_text(settings, scope) + "\n"
    try:
        if path.read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_settings(settings, path, scope)
    return True


def read_settings(path: str | Path, scope: str | None = None) -> Settings:
    """Read a settings file written by :func:`write_settings`; check its scope when given.

    Raises
    ------
    ConfigError
        Naming the file when it is missing, not JSON, not a settings file or of another scope.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: settings file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not a settings file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != SETTINGS_FORMAT:
        raise ConfigError(f"{path}: not a ctpatch settings file (expected format {SETTINGS_FORMAT!r})")
    if scope is not None and doc.get("scope") != scope:
        raise ConfigError(f"{path}: expected settings of scope {scope!r}, got {doc.get('scope')!r}")
    return Settings(doc["settings"])


# ------------------------------------------------------------------------------ settings from partial mappings
def _over_defaults(mode: str, partial: Mapping | None) -> dict:
    """A validated config of ``mode`` from ``partial``: keys of the mode's section, plus optionally
    ``seed`` (``mode`` is ignored).  Raises :class:`ConfigError` naming the key."""
    partial = _thaw(partial or {})
    partial.pop("mode", None)
    config = {"mode": mode, mode: partial}
    if "seed" in partial:
        config["seed"] = partial.pop("seed")
    return validate(config)


def ldct_settings(partial: Mapping | None = None) -> Settings:
    """Validated LDCT patch settings: ``partial`` (keys of the ``ldct`` section, and optionally
    ``seed``) over the defaults.  Complete settings come back unchanged.

    Raises :class:`ConfigError` naming the key (``ldct.<key>``) on a bad value.

    >>> ldct_settings()["patch"]["code"]
    'p55'
    >>> ldct_settings({"normalization": "dicom_unity"})["normalization_constants"]["dicom_scale"]
    4096.0
    """
    return ldct_patch_settings(_over_defaults("ldct", partial))


def ldct_job(settings: Mapping | LdctPatches | None = None) -> LdctPatches:
    """Typed LDCT job settings: the ``patches`` scope (as a settings file holds it), or a partial mapping
    completed as :func:`ldct_settings` does; validated either way.

    >>> ldct_job({"super_resolution": {"enabled": True}}).super_resolution.scale
    3
    """
    if isinstance(settings, LdctPatches):
        return settings
    return build(LdctPatches, ldct_settings(settings))


def luna16_job(settings: Mapping | LunaPatches | None = None) -> LunaPatches:
    """Typed LUNA16 job settings: the ``patches`` scope (as a settings file holds it), or a partial mapping
    (keys of the ``luna16`` section, and optionally ``seed``) over the schema's defaults.

    >>> luna16_job({"patch": {"size": 32, "stride": 4, "shifts_per_side": 3}}).patch.label_pool
    9
    """
    if isinstance(settings, LunaPatches):
        return settings
    settings = settings or {}
    try:
        return build(LunaPatches, settings)
    except KeyError:  # partial: complete it from the schema
        return build(LunaPatches, luna16_settings(_over_defaults("luna16", settings)))


def section(name: str, partial: Mapping | None = None) -> Settings:
    """One top-level section (``demo``, ``luna16``, ``ldct``, ``extract``): ``partial`` over the
    schema's defaults, validated (errors name ``<section>.<key>``).

    >>> section("demo")["size_xy"]
    512
    """
    config = {name: _thaw(partial or {})}
    if name in MODES:
        config["mode"] = name
    return Settings(validate(config)[name])


def defaults(scope: str = "patches", mode: str = "luna16") -> Settings:
    """The default settings of one scope of ``mode``.

    >>> defaults("convert")["resample"]["spacing_mm"]
    1.25
    """
    return scope_settings(default_config(mode), scope)
