"""Query parameters, strictly: a name the route does not take is a 422 naming the ones it does (and
the likely one meant), never silently ignored (``?backend=`` misspelt as ``?backends=`` would
otherwise answer from the default backend without a word)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from gateway.app.core.errors import unprocessable

TRUE, FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


def read(pairs: list[tuple[str, str]], allowed: Mapping[str, str]) -> dict[str, str]:
    """``allowed``: name -> default. Every given value, else the default."""
    out = dict(allowed)
    seen: set[str] = set()
    for name, value in pairs:
        if name not in allowed:
            raise unprocessable("unknown_parameter", unknown(name, allowed))
        if name in seen:
            raise unprocessable("repeated_parameter", f"the query parameter {name!r} is given more than once")
        seen.add(name)
        out[name] = value
    return out


def unknown(name: str, allowed: Mapping[str, str]) -> str:
    takes = ", ".join(sorted(allowed)) if allowed else "none"
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown query parameter {name!r}{hint} (this route takes: {takes})"


def boolean(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise unprocessable("invalid_parameter", f"{name} must be true or false, got {value!r}")
