"""The Lua scripts in ``lua/``: found, expanded and hashed once per process.

One file per operation, named ``<operation>-<numkeys>.lua`` as in BullMQ. A line
``-- @include NAME`` is replaced by ``lua/includes/NAME.lua``. Scripts run by
``EVALSHA``; the runner loads one with ``SCRIPT LOAD`` when the server answers
``NOSCRIPT`` (a restarted server, a ``SCRIPT FLUSH``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_INCLUDE = re.compile(r"^-- @include (\w+)$", re.MULTILINE)
_FILE_NAME = re.compile(r"^(?P<name>[a-z]+)-(?P<numkeys>\d+)\.lua$")


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    numkeys: int
    source: str
    sha: str


def lua_dir() -> Path:
    """``psctl/lua`` inside an installed wheel, else ``lua/`` of a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "lua", here.parent / "lua"):
        if (candidate / "includes").is_dir():
            return candidate
    raise FileNotFoundError(f"psctl's Lua scripts are missing (looked in {here / 'lua'} and {here.parent / 'lua'})")


@cache
def script(name: str) -> LuaScript:
    folder = lua_dir()
    matches = [p for p in folder.glob(f"{name}-*.lua") if _FILE_NAME.match(p.name)]
    if len(matches) != 1:
        raise FileNotFoundError(f"expected one lua/{name}-<numkeys>.lua, found {len(matches)}")
    path = matches[0]
    numkeys = int(_FILE_NAME.match(path.name)["numkeys"])

    def include(match: re.Match[str]) -> str:
        return (folder / "includes" / f"{match[1]}.lua").read_text()

    source = _INCLUDE.sub(include, path.read_text())
    declared = set(map(int, re.findall(r"KEYS\[(\d+)\]", source)))
    if declared != set(range(1, numkeys + 1)):
        raise ValueError(f"{path.name} names KEYS {sorted(declared)}, but its file name says {numkeys}")
    return LuaScript(name, numkeys, source, hashlib.sha1(source.encode()).hexdigest())
