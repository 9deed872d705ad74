"""The Lua scripts in ``lua/``: found, expanded and hashed once per process.

One file per operation, named ``<operation>-<numkeys>.lua`` as in BullMQ. Its
``-- @keys NAME ...`` line names the stream's keys it takes, in order, by their
names in ``layout.SUFFIXES`` (a script of the registry: by the names of
``layout.RegistryKeys``): the only place a script's keys are listed.
``LuaScript.keys_of`` builds a call's KEYS from it, and the script gets a
local of each name (``local values, scores = KEYS[1], KEYS[2]``) put before
its text; one that calls ``keys_by_name()`` or ``kinds_by_key()`` also gets
those functions, which build a table of its keys by name and of each key's
Redis type by the key (only when called: most calls never need them). That is
how includes take the keys they work on: as parameters
(``reclaim(keys_by_name(), now)``), never a caller's locals.

A line ``-- @include NAME`` is replaced by ``lua/includes/NAME.lua``; an
include names the includes it needs the same way, and each is put in once,
before the first that needs it. Scripts run by ``EVALSHA``; the runner loads
one with ``SCRIPT LOAD`` when the server answers ``NOSCRIPT`` (a restarted
server, a ``SCRIPT FLUSH``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter
from pathlib import Path
from typing import Any

from psctl.layout import KINDS, SUFFIXES, Key, RegistryKeys, StreamKeys

_INCLUDE = re.compile(r"^-- @include (\w+)$", re.MULTILINE)
_KEYS = re.compile(r"^-- @keys ([\w ]+)$", re.MULTILINE)
_FILE_NAME = re.compile(r"^(?P<name>[a-z]+)-(?P<numkeys>\d+)\.lua$")
_USES_KEYS_BY_NAME = re.compile(r"\bkeys_by_name\b")
_USES_KINDS_BY_KEY = re.compile(r"\bkinds_by_key\b")
REGISTRY_FIELDS = frozenset(RegistryKeys.__dataclass_fields__)


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

    def keys_of(self, keys: StreamKeys | RegistryKeys) -> tuple[Key, ...]:
        """The script's KEYS for the stream ``keys`` (the registry's, for a
        script of the registry), in its order."""
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

    text = path.read_text()
    named = _KEYS.search(text)
    if named is None:
        raise ValueError(f"{path.name} has no '-- @keys' line naming its keys")
    key_names = tuple(named[1].split())
    # a stream's keys, or the registry's (``layout.RegistryKeys``): never some of each
    known = SUFFIXES if key_names[0] in SUFFIXES else REGISTRY_FIELDS
    unknown = [n for n in key_names if n not in known]
    if len(key_names) != numkeys or unknown or len(set(key_names)) != numkeys:
        raise ValueError(f"{path.name}: its '-- @keys' line names {key_names}, not {numkeys} keys of a stream")
    documented = set(map(int, re.findall(r"KEYS\[(\d+)\]", text)))
    if documented != set(range(1, numkeys + 1)):
        raise ValueError(f"{path.name} names KEYS {sorted(documented)}, but its file name says {numkeys}")
    body = _expand(text, folder / "includes", set())
    source = _prelude(key_names, body) + body
    return LuaScript(
        name, numkeys, source, hashlib.sha1(source.encode()).hexdigest(), key_names, attrgetter(*key_names)
    )


def _expand(text: str, includes: Path, done: set[str]) -> str:
    """``text`` with each ``-- @include NAME`` replaced by that include, itself
    expanded first; an include already put in (``done``) is not put in again."""

    def include(match: re.Match[str]) -> str:
        name = match[1]
        if name in done:
            return f"-- (include {name}: above)"
        done.add(name)
        path = includes / f"{name}.lua"
        if not path.is_file():
            raise FileNotFoundError(f"no lua/includes/{name}.lua (named by an '-- @include' line)")
        return _expand(path.read_text(), includes, done)

    return _INCLUDE.sub(include, text)


def _prelude(key_names: tuple[str, ...], body: str) -> str:
    """The script's keys as locals (and ``keys_by_name()`` and ``kinds_by_key()``
    when it calls them), on one line, so that the script's own line numbers
    move by one."""
    indexes = ", ".join(f"KEYS[{i}]" for i in range(1, len(key_names) + 1))
    parts = [f"local {', '.join(key_names)} = {indexes}"]
    if _USES_KEYS_BY_NAME.search(body):
        by_name = ", ".join(f"{n} = {n}" for n in key_names)
        parts.append(f"local function keys_by_name() return {{{by_name}}} end")
    if _USES_KINDS_BY_KEY.search(body):
        by_key = ", ".join(f'[{n}] = "{KINDS[n]}"' for n in key_names)
        parts.append(f"local function kinds_by_key() return {{{by_key}}} end")
    return "; ".join(parts) + "\n"
