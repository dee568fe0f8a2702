"""The workflow configuration: schema validation with defaults, and checks across keys.

The Snakefile validates with ``snakemake.utils.validate`` against the same schema
(``workflow/schemas/config.schema.yaml``); :func:`load_config` does the same for the
command-line tools used outside Snakemake, and :func:`check_semantics` holds the rules a
schema cannot express.
"""

from __future__ import annotations

from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and what is allowed."""


def validate(config: dict) -> dict:
    """Validate ``config`` in place against the schema, filling defaults; return it.

    The first error names the key path, e.g. ``luna16.patch.size: 'x' is not of type 'integer'``.
    """
    import jsonschema
    from snakemake.utils import validate as sm_validate

    with SCHEMA.open() as fh:
        schema = yaml.safe_load(fh)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = []
        for err in errors[:5]:
            key = ".".join(str(p) for p in err.path) or "(top level)"
            allowed = err.schema.get("enum") if isinstance(err.schema, dict) else None
            lines.append(f"{key}: {err.message}" + (f" (allowed: {allowed})" if allowed and err.validator != "enum" else ""))
        raise ConfigError("invalid config: " + "; ".join(lines))
    sm_validate(config, str(SCHEMA), set_default=True)
    check_semantics(config)
    return config


def check_semantics(config: dict) -> None:
    """Rules across keys that the schema cannot state."""
    patch = config.get("luna16", {}).get("patch", {})
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
    if config.get("mode") == "ldct" and "ldct" in config:
        from ctpatch.extract_ldct import check_settings

        try:
            check_settings({k: v for k, v in config["ldct"].items()}, prefix="ldct.")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    norm = config.get("luna16", {}).get("normalize", {})
    if norm and not norm["hu_max"] > norm["hu_min"]:
        raise ConfigError(f"luna16.normalize: expected hu_max > hu_min, got {norm['hu_min']} .. {norm['hu_max']}")


def load_config(path: str | Path) -> dict:
    """Read a YAML config file, validate it and fill defaults."""
    path = Path(path)
    with path.open() as fh:
        config = yaml.safe_load(fh) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(config).__name__}")
    try:
        return validate(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
