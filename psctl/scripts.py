"""The Lua scripts in ``lua/``: found, expanded and hashed once per process.

One file per operation, named ``<operation>-<numkeys>.lua`` as in BullMQ. Its
``-- @keys NAME ...`` line names the stream's keys it takes, in order, by their
names in ``layout.SUFFIXES``: the only place a script's keys are listed
(``LuaScript.keys_of`` builds a call's KEYS from it). A line
``-- @include NAME`` is replaced by ``lua/includes/NAME.lua``. Scripts run by
``EVALSHA``; the runner loads one with ``SCRIPT LOAD`` when the server answers
``NOSCRIPT`` (a restarted server, a ``SCRIPT FLUSH``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter
from pathlib import Path
from typing import Any

from psctl.layout import SUFFIXES, Key, StreamKeys

_INCLUDE = re.compile(r"^-- @include (\w+)$", re.MULTILINE)
_KEYS = re.compile(r"^-- @keys ([\w ]+)$", re.MULTILINE)
_FILE_NAME = re.compile(r"^(?P<name>[a-z]+)-(?P<numkeys>\d+)\.lua$")


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    numkeys: int
    source: str
    sha: str
    # the stream's keys it takes, in KEYS order, by their names in
    # ``layout.SUFFIXES`` (its ``-- @keys`` line): said once, in the script
    key_names: tuple[str, ...] = ()
    _getter: Any = field(default=None, repr=False, compare=False)

    def keys_of(self, keys: StreamKeys) -> tuple[Key, ...]:
        """The script's KEYS for the stream ``keys``, in its order."""
        found = self._getter(keys)
        return found if type(found) is tuple else (found,)


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

    text = path.read_text()
    source = _INCLUDE.sub(include, text)
    declared = set(map(int, re.findall(r"KEYS\[(\d+)\]", source)))
    if declared != set(range(1, numkeys + 1)):
        raise ValueError(f"{path.name} names KEYS {sorted(declared)}, but its file name says {numkeys}")
    named = _KEYS.search(text)
    if named is None:
        raise ValueError(f"{path.name} has no '-- @keys' line naming its keys")
    key_names = tuple(named[1].split())
    unknown = [n for n in key_names if n not in SUFFIXES]
    if len(key_names) != numkeys or unknown:
        raise ValueError(f"{path.name}: its '-- @keys' line names {key_names}, not {numkeys} keys of a stream")
    return LuaScript(
        name, numkeys, source, hashlib.sha1(source.encode()).hexdigest(), key_names, attrgetter(*key_names)
    )
