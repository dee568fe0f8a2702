"""Validation of a config: the schema, its defaults filled in, and the rules across keys it cannot state."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import yaml

from ctpatch.settings.frozen import _thaw
from ctpatch.settings.schema import fill_defaults, schema

MODES = ("luna16", "ldct")


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and what is allowed."""


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
    check_mode_sections(config)
    fill_defaults(config)
    check_semantics(config)
    return config


def _leaves(value, prefix: str) -> list[str]:
    """The dotted keys of the leaves of a mapping (``ldct.patch.code``, ...)."""
    if isinstance(value, Mapping) and value:
        return [k for key, sub in value.items() for k in _leaves(sub, f"{prefix}.{key}")]
    return [prefix]


def check_mode_sections(config: Mapping) -> None:
    """An ``ldct`` section in a config whose ``mode`` is not ``ldct`` is refused: its keys would be ignored
    and the LUNA16 mode (by default on the demo data) would run instead.  A section equal to the schema's
    defaults (a config validated before, its defaults filled in) is no sign of intent and passes.

    >>> check_mode_sections({"mode": "luna16", "ldct": {"root": "/data/ldct"}})
    Traceback (most recent call last):
    ...
    ctpatch.settings.validate.ConfigError: ldct.root is set but mode is 'luna16': the ldct section takes effect only with mode: ldct; set mode: ldct to run the LDCT mode, or remove the ldct keys
    """
    mode = config.get("mode")
    given = config.get("ldct")
    if mode == "ldct" or not isinstance(given, Mapping) or not given:
        return
    if given == fill_defaults({"ldct": {}})["ldct"]:
        return
    keys = _leaves(given, "ldct")
    named = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    said = f"mode is {mode!r}" if mode is not None else "mode is 'luna16' (the default)"
    raise ConfigError(
        f"{named} {'is' if len(keys) == 1 else 'are'} set but {said}: the ldct section takes effect only with "
        f"mode: ldct; set mode: ldct to run the LDCT mode, or remove the ldct keys"
    )


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
    check_results(config)


def check_results(config: Mapping) -> None:
    """``results`` is a folder of its own: not empty, not the filesystem root, not inside the input root of
    the configured mode (outputs would be mixed with the data, and the data re-read as input)."""
    results = str(config.get("results", ""))
    if not results.strip():
        raise ConfigError("results: expected a folder for the outputs, got an empty string")
    res = Path(results).expanduser().absolute()
    if res == Path(res.anchor):
        raise ConfigError(f"results: expected a folder for the outputs, got the filesystem root {results!r}")
    mode = config.get("mode")
    root = config.get(mode, {}).get("root") if mode in ("luna16", "ldct") else None
    if root and root != "demo":
        data = Path(root).expanduser().absolute()
        if res == data or data in res.parents:
            raise ConfigError(
                f"results: {results!r} is inside {mode}.root {root!r}: the outputs would be written among the inputs"
            )


def check_ldct(s: Mapping, prefix: str = "ldct.") -> None:
    """The LDCT rules across keys: patch size (and its super-resolution sizes), dose-blend range,
    blur/noise shares, integer dtypes."""
    from ctpatch.core.grid import resolve_size

    def err(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{prefix}{key}: {msg}")

    from ctpatch.core.grid import SIZE_CODES
    from ctpatch.core.sr import SR_BASE, sr_sizes

    p, sr = s["patch"], s["super_resolution"]
    if p["code"] is not None and not sr["enabled"] and p["code"] not in SIZE_CODES:
        raise err(
            "patch.code",
            f"{p['code']!r} exists only with super_resolution.enabled (SPEC 2c); plain mode has {list(SIZE_CODES)}",
        )
    try:
        if p["code"] is None or not sr["enabled"]:
            edge, pad = resolve_size(p["code"], p["edge"], p["padding"])
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
            edge, _ = sr_sizes(hr, pad, sr["scale"], sr["footprint"])
        except ValueError as exc:
            raise err("super_resolution.scale", f"{exc}; choose a larger patch or a smaller scale") from None
    if edge - pad <= pad:  # the grid's starts are 0, then k * stride - padding: the second would be <= 0
        keys = "patch and super_resolution.scale" if sr["enabled"] else "patch"
        raise ConfigError(
            f"{prefix}{keys}: expected a patch stride (edge - padding) larger than the padding, got "
            f"{'input (LR) ' if sr['enabled'] else ''}edge {edge} and padding {pad}, stride {edge - pad}: the second "
            f"patch would start at {edge - 2 * pad}; choose a larger patch"
            + (" or a smaller scale" if sr["enabled"] else " or a smaller padding")
        )
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
