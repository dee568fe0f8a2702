"""Read-only settings: a mapping whose nested mappings are read-only too and whose lists are tuples."""

from __future__ import annotations

from collections.abc import Mapping


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
