"""Lost settings are loud: a password kept out of the URL is used, and a
command with no server named never writes into a fresh private server where
it should not (no usable HOME, or the embedded server switched off)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from psctl import RedisProvider, Settings, embedded
from psctl.errors import ServerError
from psctl.launcher import find_binary
from testservers import ServerProcess, free_port, start_server

from .helpers import Home

PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on a TCP port whose default user needs PASSWORD."""
    binary = find_binary(os.environ.get("PSCTL_TEST_SERVER") or None)
    port = free_port()
    process = start_server(tmp_path_factory.mktemp("guarded"), binary=binary, port=port,
                           extra={"requirepass": PASSWORD})  # fmt: skip
    yield process
    process.stop()


def _url(server: ServerProcess) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


@pytest.mark.parametrize("carrier", ["REDIS_URL", "--url"])
def test_redis_password_applies_to_a_url_that_carries_none(home: Home, guarded: ServerProcess, carrier: str) -> None:
    env = home.env | {"REDIS_PASSWORD": PASSWORD}
    args = ("--url", _url(guarded)) if carrier == "--url" else ()
    if carrier == "REDIS_URL":
        env["REDIS_URL"] = _url(guarded)
    done = home.psctl(*args, "add", "q", "k", "v", env=env)
    assert done.returncode == 0, done.stderr
    done = home.psctl(*args, "len", "q", env=env)
    assert (done.returncode, done.stdout.strip()) == (0, '{"name": "q", "length": 1}'), done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert home.servers() == []  # the named server was used, no embedded one


def test_a_urls_own_password_wins_over_redis_password(home: Home, guarded: ServerProcess) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{guarded.port}/0"
    done = home.psctl("len", "q", env=home.env | {"REDIS_URL": url, "REDIS_PASSWORD": "wrong"})
    assert done.returncode == 0, done.stderr


def test_the_library_settings_apply_redis_password_to_the_url(guarded: ServerProcess) -> None:
    env = {"REDIS_URL": _url(guarded), "REDIS_PASSWORD": PASSWORD, "REDIS_USERNAME": "default"}
    settings = Settings.resolve(env)
    assert (settings.username, settings.password) == ("default", PASSWORD)
    assert PASSWORD not in repr(settings)
    assert Settings.resolve({"REDIS_URL": "redis://u:p@h:1/0", "REDIS_PASSWORD": "x"}).password is None
    assert Settings.resolve({"REDIS_URL": "unix:///s.sock?password=p", "REDIS_PASSWORD": "x"}).password is None
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        client = RedisProvider().client()  # what an @inject function is given
    assert client.ping() is True
    client.close()


def test_the_embedded_server_gets_no_password_from_the_environment(home: Home) -> None:
    done = home.psctl("add", "q", "k", "v", env=home.env | {"REDIS_PASSWORD": "meant-for-another-server"})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("variable", ["HOME", "XDG_STATE_HOME"])
def test_no_embedded_server_under_a_home_that_does_not_exist(home: Home, variable: str) -> None:
    missing = home.root / "nonexistent"
    given = missing / "state" if variable == "XDG_STATE_HOME" else missing  # (its folder does not exist either)
    env = {k: v for k, v in home.env.items() if k != "XDG_STATE_HOME"} | {variable: str(given)}
    done = home.psctl("add-many", "q", "-", "--format", "ndjson", "-q", input='{"key": "a", "value": "x"}\n', env=env)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert f"({missing}) does not exist" in line and variable in line
    assert "REDIS_URL" in line
    assert not missing.exists()  # nothing created
    assert home.servers() == []


def test_an_xdg_state_home_about_to_be_made_is_fine(home: Home) -> None:
    """XDG_STATE_HOME need not exist yet when the folder it would be made in is the user's."""
    assert not home.state.parent.exists()
    done = home.psctl("add", "q", "k", "v")
    assert done.returncode == 0, done.stderr
    assert home.state.is_dir()


def test_no_embedded_server_under_another_users_home(home: Home, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test plays another user's folder and runs as root (CI does)")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    env = {k: v for k, v in home.env.items() if k != "XDG_STATE_HOME"} | {"HOME": str(theirs)}
    done = home.psctl("len", "q", env=env)
    assert done.returncode == 1
    assert f"HOME ({theirs}) belongs to another user" in done.stderr
    assert list(theirs.iterdir()) == []


def test_the_library_refuses_a_missing_home_too(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(home.root / "gone" / "state"))
    with pytest.raises(ServerError, match=r"XDG_STATE_HOME \(.*gone\) does not exist"):
        embedded.ensure_server()
    assert not (home.root / "gone").exists()


@pytest.mark.parametrize("how", ["--no-embedded", "PSCTL_NO_EMBEDDED"])
def test_no_embedded_makes_a_missing_url_an_error(home: Home, how: str) -> None:
    args = ("--no-embedded",) if how == "--no-embedded" else ()
    env = home.env | ({"PSCTL_NO_EMBEDDED": "1"} if how == "PSCTL_NO_EMBEDDED" else {})
    done = home.psctl(*args, "add", "q", "k", "v", env=env)
    assert (done.returncode, done.stdout) == (1, "")
    [line] = done.stderr.splitlines()
    assert line.startswith("psctl: no server named: give --url, set REDIS_URL or use a profile with a url")
    assert how in line
    assert home.servers() == [] and not home.state.exists()


def test_a_no_embedded_variable_that_is_neither_yes_nor_no_is_refused(home: Home) -> None:
    """PSCTL_NO_EMBEDDED=foo was taken as no: a cron job meaning yes wrote into a fresh private server."""
    for value in ("foo", "2", "enable"):
        done = home.psctl("add", "q", "k", "v", env=home.env | {"PSCTL_NO_EMBEDDED": value})
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr == (f"psctl: PSCTL_NO_EMBEDDED={value!r}: expected 1 (or true, yes, on) to forbid the "
                               "embedded server, or 0 (false, no, off)\n")  # fmt: skip
        assert home.servers() == [] and not home.state.exists()
    done = home.psctl("add", "q", "k", "v", env=home.env | {"PSCTL_NO_EMBEDDED": "Off"})
    assert done.returncode == 0 and "started the embedded server" in done.stderr, done.stderr


def test_no_embedded_with_a_url_works(home: Home, guarded: ServerProcess) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{guarded.port}/0"
    done = home.psctl("len", "q", "--no-embedded", env=home.env | {"REDIS_URL": url, "PSCTL_NO_EMBEDDED": "1"})
    assert done.returncode == 0, done.stderr


def test_quiet_still_says_when_it_starts_the_embedded_server(home: Home) -> None:
    started = home.psctl("-q", "add", "demo", "job-1", "hello")
    assert (started.returncode, started.stdout) == (0, "")
    assert started.stderr.startswith("psctl: started the embedded server at unix://"), started.stderr
    again = home.psctl("-q", "add", "demo", "job-2", "hello")  # running already: -q says nothing
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


@pytest.mark.parametrize(("home_value", "said"), [("", "HOME is empty"), ("relative", "HOME (relative) is not an absolute path")])
def test_no_embedded_server_under_an_empty_or_relative_home(home: Home, tmp_path: Path, home_value: str, said: str) -> None:
    (tmp_path / "relative").mkdir()
    env = {k: v for k, v in home.env.items() if k != "XDG_STATE_HOME"} | {"HOME": home_value}
    done = home.psctl("len", "q", env=env, cwd=tmp_path)
    assert done.returncode == 1 and said in done.stderr, done.stderr
    assert list((tmp_path / "relative").iterdir()) == [] and not (tmp_path / ".local").exists()
