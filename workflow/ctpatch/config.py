"""The configuration: the schema (the only home of defaults), validation, and frozen settings.

Data flow, the same for the workflow and for every command-line tool::

    config.yaml --validate()--> validated config --scope_settings()--> Settings (frozen)
                                                   --write_settings()--> <results>/<mode>/settings/<scope>.json
                                                   --read_settings()--> Settings in each CLI

* :func:`validate` checks a config against ``ctpatch/schemas/config.schema.yaml`` (shipped as
  package data), fills every default from the schema and applies the checks across keys that a
  schema cannot state (:func:`check_semantics`).  No default lives anywhere else.
* :func:`scope_settings` cuts the validated config into the settings one step needs (a
  *scope*: what a LUNA16 conversion, an LDCT pairing or a patch extraction depends on), as a
  read-only :class:`Settings`.  The workflow writes each scope once per mode to a JSON file;
  a step's settings file changes only when its own settings change, so Snakemake reruns only
  the steps that a changed key affects.
* :func:`defaults` and :func:`ldct_settings` / :func:`luna16_settings` give the validated
  settings of a mode from a partial mapping, for scripts, tests and benchmarks.

Length (~480 lines): the schema's reader, validation with the cross-key rules, the frozen
:class:`Settings` and the scopes are one data flow; about half the lines are docstrings and examples.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import yaml

SCHEMA = files("ctpatch") / "schemas" / "config.schema.yaml"
MODES = ("luna16", "ldct")
SCOPES = {
    "luna16": ("check", "convert", "demo", "patches", "plan"),
    "ldct": ("pairs", "patches", "plan"),
}
SETTINGS_FORMAT = "ctpatch-settings/1"


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and what is allowed."""


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


def default_config(mode: str = "luna16") -> dict:
    """The validated config of ``mode`` with every key at its default."""
    return validate({"mode": mode})


def validate(config: dict) -> dict:
    """Validate ``config`` in place against the schema, fill defaults, check across keys; return it.

    The first error names the key path, e.g. ``luna16.patch.size: 'x' is not of type 'integer'``.

    Raises
    ------
    ConfigError
        Naming the key and, for a choice, the allowed values.
    """
    import jsonschema

    if not isinstance(config, dict):
        raise ConfigError(f"invalid config: expected a mapping at the top level, got {type(config).__name__}")
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = []
        for err in errors[:5]:
            key = ".".join(str(p) for p in err.path) or "(top level)"
            allowed = err.schema.get("enum") if isinstance(err.schema, dict) else None
            lines.append(
                f"{key}: {err.message}" + (f" (allowed: {allowed})" if allowed and err.validator != "enum" else "")
            )
        raise ConfigError("invalid config: " + "; ".join(lines))
    fill_defaults(config)
    check_semantics(config)
    return config


def check_semantics(config: dict) -> None:
    """The rules across keys that the schema cannot state; raise :class:`ConfigError` naming the key."""
    luna = config.get("luna16", {})
    patch = luna.get("patch", {})
    if patch:
        half = patch["size"] // 2
        reach = patch["stride"] * patch["shifts_per_side"]
        if reach >= half:
            raise ConfigError(
                f"luna16.patch: expected stride * shifts_per_side < size // 2 so every shifted patch "
                f"still holds its nodule centre, got {patch['stride']} * {patch['shifts_per_side']} = {reach} "
                f">= {half}"
            )
        if patch["size"] % 2:
            raise ConfigError(f"luna16.patch.size: expected an even patch edge (centre +- size/2), got {patch['size']}")
    norm = luna.get("normalize", {})
    if norm and not norm["hu_max"] > norm["hu_min"]:
        raise ConfigError(f"luna16.normalize: expected hu_max > hu_min, got {norm['hu_min']} .. {norm['hu_max']}")
    if config.get("mode") == "ldct" and "ldct" in config:
        check_ldct(config["ldct"], prefix="ldct.")


def check_ldct(s: Mapping, prefix: str = "ldct.") -> None:
    """The LDCT rules across keys: patch size (and its super-resolution sizes), dose-blend range,
    blur/noise shares, integer dtypes."""
    from ctpatch.grid import resolve_size

    def err(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{prefix}{key}: {msg}")

    from ctpatch.grid import SIZE_CODES
    from ctpatch.sr import SR_BASE, sr_sizes

    p, sr = s["patch"], s["super_resolution"]
    if p["code"] is not None and not sr["enabled"] and p["code"] not in SIZE_CODES:
        raise err(
            "patch.code",
            f"{p['code']!r} exists only with super_resolution.enabled (SPEC 2c); plain mode has {list(SIZE_CODES)}",
        )
    try:
        if p["code"] is None or not sr["enabled"]:
            resolve_size(p["code"], p["edge"], p["padding"])
        elif p["edge"] is not None or p["padding"] is not None:
            raise ValueError(
                f"Expected either a size code or a free edge/padding, got code={p['code']!r}, "
                f"edge={p['edge']!r}, padding={p['padding']!r}"
            )
    except ValueError as exc:
        raise err("patch", str(exc)) from None
    if sr["enabled"]:
        hr, pad = (
            (SR_BASE[p["code"]][0] + SR_BASE[p["code"]][1], SR_BASE[p["code"]][1])
            if p["code"] is not None
            else (p["edge"], p["padding"])
        )
        try:
            sr_sizes(hr, pad, sr["scale"], sr["footprint"])
        except ValueError as exc:
            raise err("super_resolution.scale", f"{exc}; choose a larger patch or a smaller scale") from None
    blend, bn, out = s["dose_blend"], s["blur_noise"], s["output"]
    if not blend["low"] <= blend["high"]:
        raise err("dose_blend", f"expected low <= high, got low={blend['low']!r}, high={blend['high']!r}")
    if bn["blur_share"] + bn["noise_share"] > 1:
        raise err(
            "blur_noise",
            f"expected blur_share + noise_share <= 1 (a patch is blurred or noised, not both), "
            f"got {bn['blur_share']!r} + {bn['noise_share']!r}",
        )
    if bn["blur_size"] % 2 == 0:
        raise err("blur_noise.blur_size", f"expected a positive odd integer, got {bn['blur_size']!r}")
    if out["dtype"] in ("int16", "uint16"):
        culprits = []
        if s["normalization"] != "none":
            culprits.append(f"{prefix}normalization {s['normalization']!r}")
        if s["ds_augment"]["enabled"] and s["ds_augment"]["factors"]:
            culprits.append(f"{prefix}ds_augment.enabled (area interpolation)")
        if blend["enabled"]:
            culprits.append(f"{prefix}dose_blend.enabled")
        if bn["enabled"] and (bn["blur_share"] > 0 or (bn["noise_share"] > 0 and bn["noise_scale"] > 0)):
            culprits.append(f"{prefix}blur_noise.enabled")
        if sr["enabled"] and sr["scale"] > 1:
            culprits.append(f"{prefix}super_resolution.enabled (the input is area-downscaled)")
        if culprits:
            raise err(
                "output.dtype",
                f"integer dtype {out['dtype']!r} needs integer values, but "
                f"{', '.join(culprits)} yields non-integers (choose float16/float32"
                + (", or normalization 'none')" if s["normalization"] != "none" else ")"),
            )


def load_config(*paths: str | Path, overrides: dict | None = None) -> dict:
    """Read YAML config file(s), merged in order (later keys win, recursively), then ``overrides``;
    validate and fill defaults."""
    config: dict = {}
    for path in paths:
        path = Path(path)
        with path.open() as fh:
            data = yaml.safe_load(fh) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        config = deep_merge(config, data)
    config = deep_merge(config, overrides or {})
    try:
        return validate(config)
    except ConfigError as exc:
        where = ", ".join(str(p) for p in paths)
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None


def deep_merge(base: dict, over: Mapping) -> dict:
    """A copy of ``base`` with ``over`` merged in: mappings recursively, other values replaced.

    >>> deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}})
    {'a': {'b': 1, 'c': 3}}
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = _thaw(value)
    return out


# ------------------------------------------------------------------------------ frozen settings
class Settings(dict):
    """A read-only mapping of settings; nested mappings are :class:`Settings`, lists are tuples.

    It is a ``dict`` so that ``json.dumps`` and ``{**s, ...}`` work; every mutating method
    raises ``TypeError``.  ``to_dict()`` gives a mutable deep copy.

    >>> s = Settings({"patch": {"size": 68}})
    >>> s["patch"]["size"]
    68
    >>> s["patch"]["size"] = 1
    Traceback (most recent call last):
    ...
    TypeError: Settings are read-only; use to_dict() for a mutable copy
    """

    def __init__(self, data: Mapping = ()):
        super().__init__({k: _freeze(v) for k, v in dict(data).items()})

    def _readonly(self, *args, **kwargs):
        raise TypeError("Settings are read-only; use to_dict() for a mutable copy")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _readonly

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (Settings, (self.to_dict(),))

    def to_dict(self) -> dict:
        """A mutable deep copy (plain dicts and lists)."""
        return _thaw(self)


def _freeze(value):
    if isinstance(value, Mapping):
        return value if isinstance(value, Settings) else Settings(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


# ------------------------------------------------------------------------------ paths the config names
def luna_root(config: Mapping) -> str:
    """The LUNA16 folder: ``luna16.root``, or the demo data set's folder under ``results``."""
    root = config["luna16"]["root"]
    return f"{config['results']}/demo/luna16" if root == "demo" else root


def luna_table(config: Mapping, key: str) -> str:
    """``luna16.annotations`` or ``luna16.candidates`` as a path (relative ones start at the root)."""
    path = Path(config["luna16"][key])
    return str(path if path.is_absolute() else Path(luna_root(config)) / path)


# ------------------------------------------------------------------------------ scopes
def luna16_settings(config: Mapping) -> Settings:
    """Everything that determines a LUNA16 patch; recorded in each patch file to regenerate it."""
    luna = config["luna16"]
    s = {k: luna[k] for k in ("patch", "negatives", "output", "normalize", "resample", "duplicate_annotations")}
    s.update(
        mode="luna16",
        seed=config["seed"],
        buffer_patches=config["extract"]["buffer_patches"],
        root=luna_root(config),
        annotations=luna_table(config, "annotations"),
        candidates=luna_table(config, "candidates"),
    )
    return Settings(s)


def ldct_patch_settings(config: Mapping) -> Settings:
    """Everything that determines an LDCT patch; recorded in each patch file."""
    s = {k: v for k, v in config["ldct"].items() if k != "patients"}
    s.update(mode="ldct", seed=config["seed"], buffer_patches=config["extract"]["buffer_patches"])
    return Settings(s)


def mode_settings(config: Mapping) -> Settings:
    """The patch settings of the configured mode."""
    return luna16_settings(config) if config["mode"] == "luna16" else ldct_patch_settings(config)


def scope_settings(config: Mapping, scope: str) -> Settings:
    """The settings one step of the configured mode depends on (see :data:`SCOPES`).

    * luna16 ``check``: input discovery and the pre-flight check (root, tables, unknown_series,
      duplicate_annotations, plausibility and the normalization window of its middle-slice check,
      negatives strategy); ``convert``: resample and normalize (what a volume depends on);
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
        s = {k: config["luna16"][k] for k in ("resample", "normalize", "plausibility")}
    elif scope == "check":
        luna = config["luna16"]
        s = {
            "root": luna_root(config),
            "annotations": luna_table(config, "annotations"),
            "candidates": luna_table(config, "candidates") if luna["negatives"]["strategy"] == "candidates" else None,
            "unknown_series": luna["unknown_series"],
            "duplicate_annotations": luna["duplicate_annotations"],
            "plausibility": luna["plausibility"],
            "normalize": luna["normalize"],
        }
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
def ldct_settings(partial: Mapping | None = None, seed: int = 0, buffer_patches: int | None = None) -> Settings:
    """Validated LDCT patch settings: ``partial`` (keys of the ``ldct`` section, and optionally
    ``seed`` and ``buffer_patches``) over the defaults.  Complete settings come back unchanged.

    Raises :class:`ConfigError` naming the key (``ldct.<key>``) on a bad value.

    >>> ldct_settings()["patch"]["code"]
    'p55'
    >>> ldct_settings({"normalization": "dicom_unity"})["normalization_constants"]["dicom_scale"]
    4096.0
    """
    partial = _thaw(partial or {})
    partial.pop("mode", None)
    seed = partial.pop("seed", seed)
    buffer_patches = partial.pop("buffer_patches", buffer_patches)
    config = {"mode": "ldct", "seed": seed, "ldct": partial}
    if buffer_patches is not None:
        config["extract"] = {"buffer_patches": buffer_patches}
    return ldct_patch_settings(validate(config))


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
