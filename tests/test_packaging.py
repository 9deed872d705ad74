"""The Lua scripts ship inside the wheel and are found there; the script files
are well-formed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from psctl import scripts

ROOT = Path(__file__).resolve().parent.parent


def test_every_script_has_a_header_naming_its_keys_and_argv():
    files = sorted((ROOT / "lua").glob("*.lua"))
    assert files
    for path in files:
        text = path.read_text()
        header = text.split("]]", 1)[0]
        assert text.startswith("--[["), path.name
        numkeys = int(re.search(r"-(\d+)\.lua$", path.name)[1])
        for i in range(1, numkeys + 1):
            assert f"KEYS[{i}]" in header, (path.name, i)
        assert "ARGV[" in header and "Returns" in header, path.name
        script = scripts.script(path.name.rsplit("-", 1)[0])
        assert script.numkeys == numkeys and "@include" not in script.source


def test_loader_rejects_a_file_name_that_lies_about_its_keys(tmp_path, monkeypatch):
    (tmp_path / "includes").mkdir()
    (tmp_path / "liar-1.lua").write_text("--[[ KEYS[1] KEYS[2] ]]\nreturn KEYS[2]\n")
    monkeypatch.setattr(scripts, "lua_dir", lambda: tmp_path)
    scripts.script.cache_clear()
    try:
        with pytest.raises(ValueError, match="liar-1.lua"):
            scripts.script("liar")
    finally:
        scripts.script.cache_clear()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """psctl's wheel, built once for this module's tests."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = dist.glob("psctl-*.whl")
    return built


@pytest.mark.slow
def test_wheel_ships_the_scripts_and_works_installed(wheel, tmp_path, redis_url, r):
    names = zipfile.ZipFile(wheel).namelist()
    assert "psctl/lua/add-13.lua" in names and "psctl/lua/includes/batch.lua" in names
    # the servers of the tests and the benchmarks stay out of it
    assert not [n for n in names if n.startswith(("testservers", "tests/", "benchmarks/"))]
    # a fresh environment holding only the wheel's psctl (its dependencies come
    # from this one, found through PYTHONPATH after the wheel's own folder)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    deps = [p for p in sys.path if p.endswith("site-packages")]
    code = (
        "import psctl, psctl.scripts as s, sys;"
        f"r = psctl.Redis.from_url({redis_url!r});"
        "print(psctl.__file__); print(s.lua_dir()); print(r.psadd('wheel', 'k', 'v', 4))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *deps])}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert out[1] == str(target / "psctl" / "lua")
    assert out[2] == "4.0"
    assert r.pslen("wheel") == 1


@pytest.mark.slow
def test_the_wheel_installs_the_man_page_where_man_finds_it(wheel, tmp_path):
    from psctl import __version__

    page = f"psctl-{__version__}.data/data/share/man/man1/psctl.1"
    assert page in zipfile.ZipFile(wheel).namelist()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    installed = venv / "share" / "man" / "man1" / "psctl.1"
    assert installed.read_text() == (ROOT / "man" / "psctl.1").read_text()
    # no MANPATH: man looks in ../share/man beside each folder on PATH, as it
    # does for a venv's bin/ or pipx's ~/.local/bin
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "MANPAGER": "cat", "MANWIDTH": "80",
           "LANG": "C.UTF-8"}  # fmt: skip
    found = subprocess.run(["man", "-w", "psctl"], env=env, capture_output=True, text=True, timeout=60)
    assert (found.returncode, found.stdout.strip()) == (0, str(installed)), found.stderr
    shown = subprocess.run(["man", "psctl"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "psctl server status [OPTIONS]" in re.sub(r".\x08", "", shown.stdout)
