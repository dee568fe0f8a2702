"""What made a file: the digest of its settings and the identity of its inputs, recorded in the file and
checked against the current ones.

Every patch file carries four attributes, readable with plain h5py (README, "The patch files"):

* ``settings``: the settings that decided its patches, as canonical JSON (keys sorted; the ``patches``
  scope of :mod:`ctpatch.settings.scopes`: no path, nothing of the machine);
* ``settings_digest``: the sha256 of that text;
* ``inputs``: the identity of each input, as canonical JSON (LUNA16: per scan its series uid, the
  sha256 of its header and its data file's size, and the sha256 of the nodule table; LDCT: per slice
  pair the patient, the two file names, their series uids and the sha256 of both files);
* ``inputs_digest``: the sha256 of that text.

:func:`differences` names the first setting and the first input where a file and the current run
disagree, so that a file made with other settings or from other inputs cannot pass for this run's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

#: keys compared first: they name an input
NAMING = ("seriesuid", "patient")
#: the attributes :func:`record` writes
ATTRS = ("settings", "settings_digest", "inputs", "inputs_digest")


def canonical(value) -> str:
    """``value`` as canonical JSON: keys sorted, no spaces, tuples as lists.

    >>> canonical({"b": (1, 2), "a": {"c": None}})
    '{"a":{"c":null},"b":[1,2]}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def digest(value) -> str:
    """The sha256 (hex) of :func:`canonical` ``value``."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 (hex) of a file's bytes, read ``chunk`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def settings_attrs(settings: Mapping) -> dict:
    """The ``settings`` and ``settings_digest`` attributes of ``settings`` (e.g. a file's, changed on export)."""
    s = canonical(settings)
    return {"settings": s, "settings_digest": hashlib.sha256(s.encode()).hexdigest()}


def record(settings: Mapping, inputs) -> dict:
    """The attributes that say what made a file (see the module docstring)."""
    s, i = canonical(settings), canonical(inputs)
    return {
        "settings": s,
        "settings_digest": hashlib.sha256(s.encode()).hexdigest(),
        "inputs": i,
        "inputs_digest": hashlib.sha256(i.encode()).hexdigest(),
    }


def _first(recorded, current, where: str) -> str | None:
    """The first place (a dotted key or a list index) where two JSON values differ, with both values."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        # what names an input first (a file of other scans is told by its first scan's uid)
        for key in sorted(set(recorded) | set(current), key=lambda k: (k not in NAMING, k)):
            if key not in recorded:
                return f"{where}{key}: not recorded, now {current[key]!r}"
            if key not in current:
                return f"{where}{key}: recorded {recorded[key]!r}, now absent"
            found = _first(recorded[key], current[key], f"{where}{key}.")
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(current, list):
        for i, (a, b) in enumerate(zip(recorded, current)):
            found = _first(a, b, f"{where}[{i}].")
            if found:
                return found
        if len(recorded) != len(current):
            return f"{where.rstrip('.') or 'list'}: {len(recorded)} recorded, {len(current)} now"
        return None
    if recorded != current:
        return f"{where.rstrip('.')}: recorded {json.dumps(recorded)}, now {json.dumps(current)}"
    return None


def differences(attrs: Mapping, settings: Mapping | None, inputs=None, where: str = "") -> list[str]:
    """What a file's recorded settings and inputs (``attrs``, as h5py gives them) say against the current
    ``settings`` and ``inputs`` (None: not compared): one line each for the first setting and the first
    input that differ, naming them; empty when the file is this run's."""
    out = []
    prefix = f"{where}: " if where else ""
    for name, now in (("settings", settings), ("inputs", inputs)):
        if now is None:
            continue
        text = attrs.get(name)
        if text is None:
            out.append(f"{prefix}records no {name}: not a file of this ctpatch")
            continue
        text = text.decode() if isinstance(text, bytes) else str(text)
        now_text = canonical(now)
        if text == now_text:
            continue
        first = _first(json.loads(text), json.loads(now_text), "")
        what = "setting" if name == "settings" else "input"
        out.append(f"{prefix}made with other {name} than this run's: first differing {what} {first}")
    return out
