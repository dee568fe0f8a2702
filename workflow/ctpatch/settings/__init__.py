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

The modules: :mod:`.schema` (reading the schema, its defaults and enums), :mod:`.validate` (validation
and the rules across keys), :mod:`.frozen` (:class:`Settings`), :mod:`.types` (a typed, frozen dataclass
per section, tied to the schema by a test), :mod:`.scopes` (what each step depends on, the settings
files, and the typed settings a job takes: :func:`luna16_job`, :func:`ldct_job`).  Everything public is importable from ``ctpatch.settings``.
"""

from ctpatch.settings.frozen import Settings
from ctpatch.settings.schema import SCHEMA, choices, fill_defaults, key_schema, schema
from ctpatch.settings.scopes import (
    SCOPES,
    SETTINGS_FORMAT,
    UNTRACKED,
    defaults,
    ldct_job,
    ldct_patch_settings,
    ldct_settings,
    logs_folder,
    luna16_job,
    luna16_settings,
    luna_root,
    luna_table,
    mode_settings,
    read_settings,
    scope_settings,
    section,
    settings_text,
    sync_settings,
    write_settings,
)
from ctpatch.settings.validate import (
    MODES,
    ConfigError,
    check_ldct,
    check_semantics,
    deep_merge,
    default_config,
    load_config,
    validate,
)

__all__ = [
    "MODES",
    "SCHEMA",
    "SCOPES",
    "SETTINGS_FORMAT",
    "UNTRACKED",
    "ConfigError",
    "Settings",
    "check_ldct",
    "check_semantics",
    "choices",
    "deep_merge",
    "default_config",
    "defaults",
    "fill_defaults",
    "key_schema",
    "ldct_job",
    "ldct_patch_settings",
    "ldct_settings",
    "load_config",
    "logs_folder",
    "luna16_job",
    "luna16_settings",
    "luna_root",
    "luna_table",
    "mode_settings",
    "read_settings",
    "schema",
    "scope_settings",
    "section",
    "settings_text",
    "sync_settings",
    "validate",
    "write_settings",
]
