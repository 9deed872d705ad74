"""Settings that follow you: the config file and its profiles, the
precedence of flags, environment, profile and default, ``psctl config``, the
messages for a URL psctl cannot use, and the docs' examples of all of these.

Every test gets a HOME of its own (and no XDG_CONFIG_HOME, REDIS_* or
PSCTL_* variables); the precedence is checked through the installed
``psctl``, against the session's server, one database per place a server can
be named (so where an item lands says which was used).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from psctl import Redis
from psctl.cli.errors import ExitStatus
from psctl.cli.profiles import KEYS

from .docs import command_of
from .helpers import PSCTL, Cli, Home, complete
from .test_tls_acl import make_ca

ROOT = Path(__file__).resolve().parent.parent
HOWTO = ROOT / "docs" / "howto" / "profiles.md"
REFERENCE = ROOT / "docs" / "reference" / "settings.md"
PASSWORD = "Pr0file-Secret-pw"
WRONG = "wr0ng-Guess-pw"


def on_db(url: str, db: int) -> str:
    """``url``'s server, database ``db``."""
    if url.startswith("unix://"):
        return f"{url.split('?')[0]}?db={db}"
    return re.sub(r"(/\d+)?$", f"/{db}", url, count=1)


class Setup:
    """A HOME with (or without) a config file, and the session's server."""

    def __init__(self, home: Path, url: str) -> None:
        self.home, self.url = home, url
        self.folder = home / ".config" / "psctl"
        self.path = self.folder / "config.toml"

    def write(self, text: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path.write_text(text)
        return self.path

    def password_file(self, text: str = PASSWORD + "\n", mode: int = 0o600, name: str = "p.password") -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        path.write_text(text)
        path.chmod(mode)
        return path

    def env(self, more: dict[str, str] | None = None) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("REDIS_", "PSCTL_")) and k != "XDG_CONFIG_HOME"}  # fmt: skip
        return clean | {"HOME": str(self.home)} | (more or {})

    def psctl(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              input: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run([str(PSCTL), *args], env=self.env(env), capture_output=True, text=True, timeout=60,
                              cwd=cwd, input=input)  # fmt: skip

    def shown(self, *args: str, env: dict[str, str] | None = None, status: int = 0) -> dict[str, tuple[Any, str]]:
        """``psctl config show``: each setting's value and where it came from
        (``status``: the exit status expected; other than 0, a problem is named)."""
        done = self.psctl(*args, "config", "show", "--json", env=env)
        assert done.returncode == status and (done.stderr == "") == (status == 0), done.stderr
        return {row["setting"]: (row["value"], row["from"]) for row in json.loads(done.stdout)}

    def cli(self) -> Cli:
        """The command line in-process, in this HOME, with no server named."""
        return Cli(self.url)

    def clean(self, more: dict[str, str | None] | None = None) -> dict[str, str | None]:
        """For ``Cli``: this HOME, no server named (``more`` may name one)."""
        return {"HOME": str(self.home), "XDG_CONFIG_HOME": None, "REDIS_URL": None, "PSCTL_PROFILE": None,
                "REDIS_USERNAME": None, "REDIS_PASSWORD": None, "REDIS_SSL_CA_CERTS": None} | (more or {})  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, redis_url: str, r: Any) -> Iterator[Setup]:
    home = tmp_path / "home"
    home.mkdir()
    found = Setup(home, redis_url)
    yield found
    for db in range(1, 6):
        with Redis.from_url(on_db(redis_url, db)) as client:
            client.flushdb()


def lengths(url: str, name: str = "jobs") -> list[int]:
    """The length of stream ``name`` in databases 0 to 5 of the server."""
    found = []
    for db in range(6):
        with Redis.from_url(on_db(url, db)) as client:
            found.append(client.pslen(name))
    return found


@pytest.fixture
def acl_user(r: Any) -> Iterator[str]:
    """A user of the session's server who must give ``PASSWORD`` (the default user needs none)."""
    r.execute_command("ACL", "SETUSER", "cfg-worker", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    yield "cfg-worker"
    r.execute_command("ACL", "DELUSER", "cfg-worker")


# -- the precedence table -----------------------------------------------------------------------

# Where the server is named: database 1 by --url, 2 by REDIS_URL, 3 by the profile.
SERVER_CASES = [
    # flag, env, profile -> the database used and where `config show` says it came from
    (True, True, True, 1, "flag --url"),
    (True, False, True, 1, "flag --url"),
    (True, True, False, 1, "flag --url"),
    (False, True, True, 2, "env REDIS_URL"),
    (False, True, False, 2, "env REDIS_URL"),
    (False, False, True, 3, "PROFILE"),
]


@pytest.mark.parametrize(("flag", "env", "profile", "db", "source"), SERVER_CASES)
@pytest.mark.parametrize("chosen_by", ["--profile", "PSCTL_PROFILE", "[default]"])
def test_the_server_is_the_first_named_and_items_land_there(
    setup: Setup, flag: bool, env: bool, profile: bool, db: int, source: str, chosen_by: str
) -> None:
    table = "[default]" if chosen_by == "[default]" else "[profiles.p]"
    setup.write(f'{table}\ntimeout = "7s"\n' + (f'url = "{on_db(setup.url, 3)}"\n' if profile else ""))
    args = ["--url", on_db(setup.url, 1)] if flag else []
    environ = {"REDIS_URL": on_db(setup.url, 2)} if env else {}
    if chosen_by == "--profile":
        args += ["--profile", "p"]
    elif chosen_by == "PSCTL_PROFILE":
        environ["PSCTL_PROFILE"] = "p"
    done = setup.psctl(*args, "add", "jobs", "k", "v", env=environ)
    assert done.returncode == 0, done.stderr
    expected = [0] * 6
    expected[db] = 1
    assert lengths(setup.url) == expected
    shown = setup.shown(*args, env=environ)
    origin = f"profile {'default' if table == '[default]' else 'p'}"
    assert shown["url"][1] == source.replace("PROFILE", origin)
    assert shown["timeout"] == ("7s", origin)  # not the server's: the profile's whichever server


@pytest.mark.parametrize(
    ("flag", "env", "profile", "expected"),
    [
        ("2s", "3s", "4s", ("2s", "flag --timeout")),
        (None, "3s", "4s", ("3s", "env PSCTL_TIMEOUT")),
        (None, None, "4s", ("4s", "PROFILE")),
        ("2s", None, "4s", ("2s", "flag --timeout")),
        (None, None, None, ("10s", "default")),
    ],
)  # fmt: skip
def test_the_timeout_comes_from_flag_env_profile_default(
    setup: Setup, flag: str | None, env: str | None, profile: str | None, expected: tuple[str, str]
) -> None:
    setup.write("[default]\n" + (f'timeout = "{profile}"\n' if profile else ""))
    args = ["--timeout", flag] if flag else []
    shown = setup.shown(*args, env={"PSCTL_TIMEOUT": env} if env else {})
    assert shown["timeout"] == (expected[0], expected[1].replace("PROFILE", "profile default"))


def test_the_server_settings_go_with_the_server_that_names_them(setup: Setup, tmp_path: Path) -> None:
    """cluster, tls_ca, username and the password: from whatever names the
    server, flags on top; never a profile's for REDIS_URL's server, never
    REDIS_*'s for the profile's."""
    ca = tmp_path / "ca.pem"
    password = setup.password_file()
    setup.write(f'[default]\nurl = "rediss://127.0.0.1:1/0"\nusername = "pro"\npassword_file = "{password}"\n'
                f'tls_ca = "{ca}"\ncluster = true\n')  # fmt: skip
    origin = "profile default"
    shown = setup.shown(env={"REDIS_USERNAME": "envuser", "REDIS_PASSWORD": "envpw", "REDIS_CLUSTER": "0",
                             "REDIS_SSL_CA_CERTS": "/env/ca.pem"}, status=ExitStatus.USAGE)  # (no such ca.pem)
    assert shown["username"] == ("pro", origin) and shown["password"] == ("***", f"{origin}: password_file {password}")
    assert shown["cluster"] == (True, origin) and shown["tls_ca"] == (str(ca), origin)

    by_env = {"REDIS_URL": on_db(setup.url, 2)}
    shown = setup.shown(env=by_env)
    assert shown["url"][1] == "env REDIS_URL"
    assert shown["username"] == (None, "default") and shown["password"] == (None, "default")
    assert shown["cluster"] == (False, "default") and shown["tls_ca"] == (None, "default")
    shown = setup.shown(env=by_env | {"REDIS_USERNAME": "envuser", "REDIS_PASSWORD": "envpw"})
    assert shown["username"] == ("envuser", "env REDIS_USERNAME") and shown["password"] == ("***", "env REDIS_PASSWORD")

    shown = setup.shown("--url", "rediss://urluser:urlpw@h:1/0", "--tls-ca", "/flag/ca.pem", "--cluster",
                        status=ExitStatus.USAGE)  # (no such /flag/ca.pem)
    assert shown["url"] == ("rediss://urluser:***@h:1/0", "flag --url")
    assert shown["username"] == ("urluser", "flag --url") and shown["password"] == ("***", "flag --url")
    assert shown["tls_ca"] == ("/flag/ca.pem", "flag --tls-ca") and shown["cluster"] == (True, "flag --cluster")


def test_a_profile_s_user_and_password_file_log_in_and_no_other_server_gets_them(setup: Setup, acl_user: str) -> None:
    right, wrong = setup.password_file(name="right"), setup.password_file(WRONG + "\n", name="wrong")
    setup.write(f'[profiles.good]\nurl = "{on_db(setup.url, 3)}"\nusername = "{acl_user}"\npassword_file = "right"\n'
                f'[profiles.bad]\nurl = "{on_db(setup.url, 3)}"\nusername = "{acl_user}"\n'
                f'password_file = "{wrong}"\n')  # fmt: skip
    assert right.exists()
    done = setup.psctl("--profile", "good", "add", "jobs", "k", "v")
    assert done.returncode == 0, done.stderr
    assert lengths(setup.url) == [0, 0, 0, 1, 0, 0]

    done = setup.psctl("--profile", "bad", "add", "jobs", "k2", "v")  # the password is really sent
    assert done.returncode == ExitStatus.SERVER
    assert f"refused the credentials of user '{acl_user}'" in done.stderr and WRONG not in done.stderr

    # the same profile, with the server named elsewhere: the default user, no password (it needs none)
    for args, env in ((["--url", on_db(setup.url, 1)], {}), ([], {"REDIS_URL": on_db(setup.url, 2)})):
        done = setup.psctl("--profile", "bad", *args, "add", "jobs", "k", "v", env=env)
        assert done.returncode == 0, (args, done.stderr)
    assert lengths(setup.url) == [0, 1, 1, 1, 0, 0]

    # and REDIS_USERNAME / REDIS_PASSWORD never reach the profile's server, with credentials of its own or none
    leaked = {"REDIS_USERNAME": acl_user, "REDIS_PASSWORD": WRONG}
    done = setup.psctl("--profile", "good", "len", "jobs", env=leaked)
    assert done.returncode == 0 and json.loads(done.stdout)["length"] == 1, done.stderr
    setup.write(f'[default]\nurl = "{on_db(setup.url, 3)}"\n')
    done = setup.psctl("len", "jobs", env=leaked)
    assert done.returncode == 0 and json.loads(done.stdout)["length"] == 1, done.stderr
    assert setup.psctl("len", "jobs", env=leaked | {"REDIS_URL": on_db(setup.url, 3)}).returncode == ExitStatus.SERVER


def test_psctl_work_and_completion_use_the_profile_too(setup: Setup) -> None:
    setup.write(f'[profiles.p]\nurl = "{on_db(setup.url, 4)}"\n')
    with Redis.from_url(on_db(setup.url, 4)) as client:
        client.psaddmany("jobs", [("a", "1", 1), ("b", "2", 2)])
        done = setup.psctl("work", "jobs", "--idle-exit", "0", "-q", "--", "true", env={"PSCTL_PROFILE": "p"})
        assert done.returncode == 0, done.stderr
        assert client.pslen("jobs") == 0
        client.psadd("journal", "c", "3")
    assert complete("psctl --profile p stats jo", setup.env()) == ["jobs", "journal"]
    assert complete("psctl len jobs --profile ", setup.env()) == ["p"]  # (the profiles themselves)
    setup.write("[default]\nurl = \n")
    assert complete("psctl --profile ", setup.env()) == []  # (a broken file: nothing, and no error)


def shown_url(done: subprocess.CompletedProcess[str]) -> Any:
    """The url ``config show --json`` printed."""
    assert done.returncode == 0, done.stderr
    return {row["setting"]: row["value"] for row in json.loads(done.stdout)}["url"]


def test_an_empty_home_with_no_file_uses_the_embedded_server(home: Home) -> None:
    env = {k: v for k, v in home.env.items() if not k.startswith("PSCTL_") and k != "XDG_CONFIG_HOME"}
    done = home.psctl("add", "jobs", "k", "v", env=env)
    assert done.returncode == 0, done.stderr
    [started] = re.findall(r"the embedded server at (unix://\S+);", done.stderr)
    assert home.servers()
    done = home.psctl("config", "show", "--json", env=env)
    shown = {row["setting"]: (row["value"], row["from"]) for row in json.loads(done.stdout)}
    # the URL the embedded server has (a URL, not a description of one), whether or not it runs
    assert shown["url"] == (started, "default (the embedded server)") and shown["profile"] == (None, "default")
    home.psctl("server", "stop", env=env)
    assert shown_url(home.psctl("config", "show", "--json", env=env)) == started
    # a default section with no url (a timeout only) still leaves the embedded server
    (home.root / ".config" / "psctl").mkdir(parents=True)
    (home.root / ".config" / "psctl" / "config.toml").write_text('[default]\ntimeout = "7s"\n')
    done = home.psctl("len", "jobs", env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["length"] == 1, done.stderr


# -- config show and config path ------------------------------------------------------------------


def test_config_show_masks_every_password(setup: Setup) -> None:
    setup.write(f'[default]\nurl = "{on_db(setup.url, 3)}"\nusername = "u"\npassword_file = "p.password"\n')
    setup.password_file()
    cli = setup.cli()
    for args, env in (
        ([], {}),
        (["--url", "redis://u:Url-Secret-pw@h:1/0"], {}),
        (["--url", "redis://h:1/0?password=Url-Secret-pw"], {}),
        ([], {"REDIS_URL": "redis://h:1/0", "REDIS_PASSWORD": "Env-Secret-pw"}),
    ):
        for output in ("--json", "--table", "-o csv"):
            done = cli(*args, "config", "show", *output.split(), env=setup.clean(env) | {"COLUMNS": "200"})
            assert done.exit_code == 0, done.stderr
            assert "***" in done.stdout
            for secret in (PASSWORD, "Url-Secret-pw", "Env-Secret-pw", "Secret"):
                assert secret not in done.stdout + done.stderr, (args, env, output)


def test_config_path_says_where_the_file_is_and_whether_it_exists(setup: Setup) -> None:
    cli = setup.cli()
    found = {"path": str(setup.path), "exists": False, "problem": None}
    assert cli.ok("config", "path", env=setup.clean()) == found
    setup.write("")
    assert cli.ok("config", "path", env=setup.clean()) == found | {"exists": True}
    # a file psctl cannot use exists, and says why it cannot be used (the message commands print)
    setup.write("[default]\nurll = 1\n")
    problem = f"{setup.path}: [default]: unknown key 'urll' (known: {', '.join(KEYS)})"
    assert cli.ok("config", "path", env=setup.clean()) == found | {"exists": True, "problem": problem}
    elsewhere = setup.home / "xdg"
    done = cli("config", "path", "-o", "raw", env=setup.clean({"XDG_CONFIG_HOME": str(elsewhere)}))
    assert done.stdout == f"{elsewhere}/psctl/config.toml\n"


def test_the_file_is_not_read_for_help_or_version(setup: Setup) -> None:
    setup.write("this is [not TOML\n")
    for args in (["--help"], ["--version"], ["len", "--help"], ["config", "--help"]):
        done = setup.psctl(*args)
        assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
    assert setup.psctl("len", "jobs").returncode == ExitStatus.USAGE


# -- bad input: one line naming the file, exit 2, nothing done -----------------------------------------------


BAD_FILES = [
    ("[default]\nurl = \n", r"FILE:2: not valid TOML"),
    ('[default]\nurl = "redis://h:1/0"\n[default]\n', r"FILE:3: not valid TOML"),
    ('[defaults]\nurl = "redis://h:1/0"\n', r"FILE: unknown table or key 'defaults'"),
    ('[default]\nurll = "redis://h:1/0"\n', r"FILE: \[default\]: unknown key 'urll' \(known: url, cluster"),
    ('[profiles.p]\npassword = "Zq7-secret"\n', r"FILE: \[profiles.p\]: no password in the config file: .*password_file"),
    ('[default]\nurl = "redis://u:Zq7-secret@h:1/0"\n', r"FILE: \[default\]: url 'redis://u:\*\*\*@h:1/0' holds a password"),
    ('[default]\ncluster = "yes"\nurl = "redis://h:1/0"\n', r"FILE: \[default\]: cluster must be true or false, got 'yes'"),
    ('[default]\ntimeout = "5x"\n', r"FILE: \[default\]: timeout: '5x' is not a duration"),
    ("[default]\ntimeout = 0.001\n", r"FILE: \[default\]: timeout must be from 0.01 to 1,000,000,000 seconds, got 0.001"),
    ("[default]\nurl = 6379\n", r"FILE: \[default\]: url must be text, got 6379"),
    # a value of the wrong kind is shown with its password hidden, an array or a table by its kind alone
    ('[default]\nurl = ["redis://u:Zq7-secret@h"]\n', r"FILE: \[default\]: url must be text, got an array"),
    ('[default]\nurl = {h = "redis://u:Zq7-secret@h"}\n', r"FILE: \[default\]: url must be text, got a table"),
    ('[default]\nurl = "redis://h:1/0"\ncluster = "redis://u:Zq7-secret@h"\n',
     r"FILE: \[default\]: cluster must be true or false, got 'redis://u:\*\*\*@h'"),
    ('[default]\nurl = "redis://h:1/0"\ncluster = 1\n', r"FILE: \[default\]: cluster must be true or false, got 1$"),
    ('[default]\ntimeout = "redis://u:Zq7-secret@h"\n', r"FILE: \[default\]: timeout: 'redis://u:\*\*\*@h' is not a "
                                                    r"duration"),
    ('[default]\ntimeout = true\n', r"FILE: \[default\]: timeout must be a DURATION \(\"5s\"\), got true$"),
    ('[default]\nusername = "u"\n', r"FILE: \[default\]: username without a url"),
    ('[profiles.default]\nurl = "redis://h:1/0"\n', r"FILE: \[profiles.default\]: write it as \[default\]"),
    ('[default]\nurl = "localhost:6379"\n', r"FILE: \[default\]: url 'localhost:6379' is not a URL; expected "
                                            r"redis://HOST\[:PORT\]\[/DB\], rediss://… or unix:///PATH \(did you mean "
                                            r"redis://localhost:6379\?\)"),
    # a mistake in a profile that is not used is still one
    ('[default]\ntimeout = "5s"\n[profiles.other]\ntimeout = "forever"\n', r"FILE: \[profiles.other\]: timeout: 'forever'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_config_file_is_one_line_exit_2_and_nothing_done(setup: Setup, r: Any, text: str, message: str) -> None:
    path = setup.write(text)
    cli = setup.cli()
    line = cli.fails(ExitStatus.USAGE, "add", "jobs", "k", "v", env=setup.clean({"REDIS_URL": setup.url}))
    assert re.fullmatch(rf"psctl: {message.replace('FILE', re.escape(str(path)))}.*", line), line
    assert "Zq7-secret" not in line
    assert r.pslen("jobs") == 0


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda s: s.password_file(mode=0o640), r"password_file PASS: others may read it \(mode 0640\): make it "
                                                r"yours alone \(chmod 600 PASS\)"),
        (lambda s: s.password_file(mode=0o604), r"password_file PASS: others may read it \(mode 0604\)"),
        (lambda s: s.password_file("\n"), r"password_file PASS: the file is empty"),
        (lambda s: s.password_file("one\ntwo\n"), r"password_file PASS: the file holds more than one line"),
        (lambda s: (s.folder / "p.password").mkdir(parents=True), r"password_file PASS: cannot read it \(Is a directory\)"),
        (lambda s: None, r"password_file PASS: cannot read it \(No such file or directory\)"),
    ],
)  # fmt: skip
def test_a_password_file_psctl_cannot_use_is_refused(setup: Setup, r: Any, write: Any, message: str) -> None:
    write(setup)
    path = setup.write(f'[profiles.p]\nurl = "{setup.url}"\npassword_file = "p.password"\n')
    line = setup.cli().fails(ExitStatus.USAGE, "--profile", "p", "add", "jobs", "k", "v", env=setup.clean())
    expected = message.replace("PASS", re.escape(str(setup.folder / "p.password")))
    assert re.match(rf"psctl: {re.escape(str(path))}: \[profiles.p\]: {expected}", line), line
    assert PASSWORD not in line and r.pslen("jobs") == 0


def test_an_unknown_profile_is_refused_naming_how_it_was_named(setup: Setup) -> None:
    cli = setup.cli()
    line = cli.fails(ExitStatus.USAGE, "--profile", "prod", "len", "jobs", env=setup.clean())
    assert line == f"psctl: --profile prod: no such profile: there is no config file ({setup.path})"
    setup.write('[default]\ntimeout = "5s"\n[profiles.staging]\ntimeout = "6s"\n')
    line = cli.fails(ExitStatus.USAGE, "len", "jobs", env=setup.clean({"PSCTL_PROFILE": "prod"}))
    assert line == f"psctl: PSCTL_PROFILE=prod: no such profile in {setup.path} (profiles: default, staging)"
    # after the command too, as --url may be
    line = cli.fails(ExitStatus.USAGE, "len", "jobs", "--profile", "prod", env=setup.clean())
    assert line.startswith("psctl: --profile prod: no such profile")
    # --profile default names the default section
    assert setup.shown("--profile", "default")["timeout"] == ("5s", "profile default")


def test_a_link_to_a_missing_config_file_is_refused_not_ignored(setup: Setup, r: Any) -> None:
    setup.folder.mkdir(parents=True)
    setup.path.symlink_to(setup.home / "dotfiles" / "psctl.toml")
    cli = setup.cli()
    line = cli.fails(ExitStatus.USAGE, "add", "jobs", "k", "v", env=setup.clean({"REDIS_URL": setup.url}))
    target = setup.home / "dotfiles" / "psctl.toml"
    assert line == f"psctl: {setup.path}: the config file is a link to {target}, which does not exist"
    assert r.pslen("jobs") == 0
    assert cli.ok("config", "path", env=setup.clean()) == {"path": str(setup.path), "exists": True, "problem": line[7:]}


def test_an_empty_profile_name_is_refused_not_taken_for_the_default(setup: Setup) -> None:
    setup.write('[default]\ntimeout = "5s"\n')
    line = setup.cli().fails(ExitStatus.USAGE, "--profile", "", "len", "jobs", env=setup.clean())
    assert line == "psctl: --profile '': expected a profile's NAME (the file's [default] is used when none is named)"
    assert setup.shown(env={"PSCTL_PROFILE": ""})["profile"] == ("default", "profile default")  # (unset, as ever)


def test_config_show_names_a_problem_in_its_row_shows_the_rest_and_exits_as_a_command_would(setup: Setup) -> None:
    setup.write('[profiles.p]\nurl = "redis://127.0.0.1:1/0"\nusername = "u"\npassword_file = "gone.password"\n'
                '[profiles.t]\nurl = "rediss://127.0.0.1:1/0"\ntls_ca = "nope.pem"\n')  # fmt: skip
    cases = [
        (["--profile", "p"], {}, "password", "cannot read it (No such file or directory)", ExitStatus.USAGE),
        (["--profile", "t"], {}, "tls_ca", "not a readable CA certificate file (No such file or directory)",
         ExitStatus.USAGE),
        (["--url", "unix:///x.sock", "--cluster"], {}, "url",
         "cluster mode takes a redis:// or rediss:// URL, not a unix:// socket (unix:///x.sock)", ExitStatus.USAGE),
        ([], {"REDIS_HOST": "h", "REDIS_PORT": "x"}, "url",
         "REDIS_PORT must be a whole number from 0 to 65535, got 'x'", ExitStatus.USAGE),
        (["--no-embedded"], {}, "url", "no server named: give --url, set REDIS_URL or use a profile with a url (the "
         "embedded server is off: --no-embedded)", ExitStatus.SERVER),
        # (its own check found none of this once: config show said all was well where every command exited 2)
        (["--cluster"], {}, "url", "cluster mode needs a cluster to talk to: give --url, set REDIS_URL or use a "
         "profile with a url", ExitStatus.USAGE),
    ]  # fmt: skip
    for args, env, setting, problem, status in cases:
        done = setup.psctl(*args, "config", "show", "--json", env=env)
        rows = {row["setting"]: row for row in json.loads(done.stdout)}
        assert list(rows) == ["config_file", "profile", "url", "cluster", "timeout", "wait_replicas", "username", "password",
                              "tls_ca"]
        assert rows[setting]["problem"] == problem, args
        assert [name for name, row in rows.items() if row["problem"]] == [setting]
        [line] = done.stderr.splitlines()
        assert done.returncode == status and line.startswith("psctl: ") and line.endswith(problem), (args, line)
    # the rest is still shown: the profile's user, and where its password would come from
    rows = {row["setting"]: row for row in json.loads(setup.psctl("--profile", "p", "config", "show", "--json").stdout)}
    assert (rows["username"]["value"], rows["username"]["from"]) == ("u", "profile p")
    assert (rows["password"]["value"], rows["password"]["from"]) == (None, "profile p: password_file gone.password")
    # and a command with those settings fails with the same line, before connecting
    assert setup.psctl("--profile", "p", "len", "jobs").stderr == setup.psctl("--profile", "p", "config", "show").stderr


def test_config_show_shows_what_a_url_or_the_environment_names(setup: Setup) -> None:
    shown = setup.shown("--url", "unix:///s.sock?username=worker&password=x")
    assert shown["url"] == ("unix:///s.sock?username=worker&password=***", "flag --url")  # (not "uni***")
    assert shown["username"] == ("worker", "flag --url") and shown["password"] == ("***", "flag --url")
    shown = setup.shown(env={"REDIS_HOST": "example.org", "REDIS_PORT": "1234", "REDIS_DB": "2"})
    assert shown["url"] == ("redis://example.org:1234/2", "env REDIS_HOST")  # a URL, as the row's name says
    shown = setup.shown(env={"REDIS_HOST": "::1", "REDIS_SSL": "1"})
    assert shown["url"] == ("rediss://[::1]:6379/0", "env REDIS_HOST")
    # more nodes of a cluster (addr=), in cluster mode from the flag: the URL's user, the password hidden
    shown = setup.shown("--cluster", "--url", "redis://alice:Zq7-secret@node-1:7000?addr=node-2:7000")
    assert shown["username"] == ("alice", "flag --url") and shown["password"] == ("***", "flag --url")
    assert shown["url"] == ("redis://alice:***@node-1:7000?addr=node-2:7000", "flag --url")


def test_a_commands_messages_name_the_user_of_a_cluster_url_with_addr(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user a NOPERM line names, and the server, read without I/O: they read
    the URL without cluster mode, where addr= is refused, and named no user."""
    from psctl.cli.global_options import GlobalOptions
    from psctl.cli.session import Session

    for name in ("REDIS_URL", "REDIS_CLUSTER", "REDIS_USERNAME", "PSCTL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    session = Session(GlobalOptions("redis://alice:Zq7-secret@node-1:7000?addr=node-2:7000", True))
    assert session.user == "alice"
    assert session.where == "redis://alice:***@node-1:7000?addr=node-2:7000"


@pytest.mark.parametrize(
    ("host", "shown"), [("u:Zq7-secret@queue-host", "u:***@queue-host"), ("redis://queue-host", "redis://queue-host"),
                        ("queue-host:6379", "queue-host:6379"), ("queue host", "queue host")],
)  # fmt: skip
def test_a_redis_host_that_is_not_a_host_is_refused(setup: Setup, host: str, shown: str) -> None:
    line = setup.cli().fails(ExitStatus.USAGE, "len", "jobs", env=setup.clean({"REDIS_HOST": host}))
    assert line == (f"psctl: REDIS_HOST {shown!r} is not a host name or address: a URL goes in REDIS_URL, a port in "
                    "REDIS_PORT, a password in REDIS_PASSWORD")  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "config"),
    [(["--url", "unix:///x.sock", "--cluster"], {}, ""), (["--url", "unix:///x.sock"], {"REDIS_CLUSTER": "1"}, ""),
     (["--profile", "c"], {}, '[profiles.c]\nurl = "unix:///x.sock"\ncluster = true\n')],
)  # fmt: skip
def test_cluster_mode_with_a_unix_socket_is_refused_before_connecting(
    setup: Setup, args: list[str], env: dict[str, str], config: str
) -> None:
    if config:
        setup.write(config)
    line = setup.cli().fails(ExitStatus.USAGE, *args, "len", "jobs", env=setup.clean(env))
    assert line == "psctl: cluster mode takes a redis:// or rediss:// URL, not a unix:// socket (unix:///x.sock)"


def test_a_broken_file_does_not_stop_a_command_that_needs_no_server(setup: Setup, home: Home) -> None:
    setup.write("[default]\nurll = 1\n")
    done = setup.psctl("server", "status", "--json", env={"XDG_STATE_HOME": str(home.root / "state")})
    assert done.returncode in (0, ExitStatus.NOT_FOUND) and done.stderr == "", done.stderr


# -- the URL messages --------------------------------------------------------------------------------------


EXPECTED = r"expected redis://HOST\[:PORT\]\[/DB\], rediss://… or unix:///PATH"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("localhost:6379", rf"'localhost:6379' is not a URL; {EXPECTED} \(did you mean redis://localhost:6379\?\)"),
        ("redis//queue-host:6379/0", rf"'redis//queue-host:6379/0' is not a URL; {EXPECTED} \(did you mean "
                                     r"redis://queue-host:6379/0\?\)"),
        ("redis:/queue-host", rf"'redis:/queue-host' is not a URL; {EXPECTED} \(did you mean redis://queue-host\?\)"),
        ("redis:6379", rf"'redis:6379' is not a URL; {EXPECTED} \(did you mean redis://redis:6379\?\)"),
        ("/run/redis.sock", rf"'/run/redis.sock' is not a URL; {EXPECTED} \(did you mean unix:///run/redis.sock\?\)"),
        ("http://queue-host:6379", rf"'http://queue-host:6379' is not a server URL; {EXPECTED} \(did you mean "
                                   r"redis://queue-host:6379\?\)"),
        ("u:Zq7-secret@queue-host", rf"'u:\*\*\*@queue-host' is not a URL; {EXPECTED} \(did you mean "
                                    r"redis://u:\*\*\*@queue-host\?\)"),
        ("redis//u:Zq7-secret@queue-host", rf"'redis//u:\*\*\*@queue-host' is not a URL; {EXPECTED} \(did you mean "
                                           r"redis://u:\*\*\*@queue-host\?\)"),
        ("redis://u:Zq7/secret@queue-host", r"'redis://u:\*\*\*@queue-host': the URL's user name or password holds a "
                                            r"character a URL reserves .*"),
        ("redis://queue-host:99999", r"'redis://queue-host:99999': the URL's port is not a number from 0 to 65535"),
        ("foo bar", rf"'foo bar' is not a URL; {EXPECTED}"),
        # what redis-py would misread (another database) or fail on (a traceback)
        ("redis://queue-host:6379/abc", r"'redis://queue-host:6379/abc': the URL's path is the database's number, "
                                        r"alone \(redis://HOST:PORT/DB\); this one is not"),
        ("redis://queue-host/0/5", r"'redis://queue-host/0/5': the URL's path is the database's number, alone .*"),
        ("redis://u:Zq7-secret@queue-host/x", r"'redis://u:\*\*\*@queue-host/x': the URL's path is the database's .*"),
        ("redis://[::1/0", r"'redis://\[::1/0': the URL's host is not a host name, nor an IPv6 address in brackets "
                           r"\(\[::1\]\)"),
        ("redis://queue-host/0?db=x", r"'redis://queue-host/0\?db=x': the URL parameter 'db' has a value redis-py "
                                      r"cannot read: the database's number"),
        ("redis://queue-host?addr=other-host:0", r"'redis://queue-host\?addr=other-host:0': the URL parameter 'addr' is "
                                                 r"a node's HOST:PORT .*"),
        ("redis://queue-host?addr=other%20host:1", r"'redis://queue-host\?addr=other%20host:1': the URL parameter 'addr' .*"),
        ("redis://u:Zq7-secret@queue-host?addr=other-host", r"'redis://u:\*\*\*@queue-host\?addr=other-host': the URL "
                                                            r"parameter 'addr' is a node's HOST:PORT \(\[::1\]:7000 for IPv6\); one is not"),
        ("unix://", r"'unix://': a unix:// URL names the socket by its full path, unix:///PATH; this one has none"),
        ("unix://relative.sock", r"'unix://relative.sock': a unix:// URL has no host, only the socket's full path: "
                                 r"unix:///PATH \(three slashes\)"),
        ("unix:relative.sock", rf"'unix:relative.sock' is not a URL; {EXPECTED}"),  # (no "did you mean redis://")
    ],
)  # fmt: skip
def test_a_url_psctl_cannot_use_says_what_was_given_and_what_is_expected(setup: Setup, given: str, message: str) -> None:
    cli = setup.cli()
    for args, env, named in (
        (["--url", given], {}, "--url"),
        ([], {"REDIS_URL": given}, "REDIS_URL"),
    ):
        line = cli.fails(ExitStatus.USAGE, *args, "len", "jobs", env=setup.clean(env))
        assert re.fullmatch(rf"psctl: {named} {message}", line), line
        assert "Zq7" not in line and "secret" not in line
    path = setup.write(f'[profiles.p]\nurl = "{given}"\n')
    line = cli.fails(ExitStatus.USAGE, "len", "jobs", "--profile", "p", env=setup.clean())
    assert re.fullmatch(rf"psctl: {re.escape(str(path))}: \[profiles.p\]: url {message}", line), line


# -- the docs' examples ----------------------------------------------------------------------------------


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), re.DOTALL)


def commands(block: str, crontab: bool = False) -> list[str]:
    """The shell lines of a block (a crontab's without its five time fields), comments and blanks left out."""
    found = []
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found.append(command_of(line) if crontab else line)
    return found


def test_every_toml_example_is_a_file_psctl_takes(setup: Setup) -> None:
    setup.password_file(name="prod.password")  # (checked only when its profile is used)
    for page in (HOWTO, REFERENCE):
        found = blocks(page, "toml")
        assert found, page
        for text in found:
            assert tomllib.loads(text)
            setup.write(text)
            assert setup.shown()["profile"] == ("default", "profile default")


def test_the_howto_s_examples_run(setup: Setup, tmp_path: Path) -> None:
    """The how-to's file, with each profile's server the session's server (a
    database each; without tls_ca: that server speaks no TLS), and each shell
    line and crontab command of the page, in order, with any other server
    URL the session's server too. The password its lines write is the one
    the server's user takes."""
    (config,) = [text for text in blocks(HOWTO, "toml") if "[profiles.prod]" in text]
    tables = tomllib.loads(config)
    dbs = {"default": 1, "prod": 3, "staging": 2}
    lines = []
    for name, values in [("default", tables["default"]), *tables["profiles"].items()]:
        values = dict(values, url=on_db(setup.url, dbs[name]))
        values.pop("tls_ca", None)
        header = "[default]" if name == "default" else f"[profiles.{name}]"
        lines += [header, *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    setup.write("\n".join(lines) + "\n")
    (tmp_path / "process-one").write_text("#!/bin/sh\ncat > /dev/null\n")
    (tmp_path / "process-one").chmod(0o755)
    env = setup.env({"PATH": f"{PSCTL.parent}:{os.environ['PATH']}"})
    user = tables["profiles"]["prod"]["username"]
    outputs: dict[str, str] = {}
    with Redis.from_url(setup.url) as admin:
        try:
            for language in ("sh", "crontab"):
                for block in blocks(HOWTO, language):
                    for line in commands(block, crontab=language == "crontab"):
                        line = re.sub(r"rediss?://\S+", shlex.quote(on_db(setup.url, 5)), line)
                        done = subprocess.run(["sh", "-c", line], env=env, cwd=tmp_path, capture_output=True,
                                              text=True, timeout=60)  # fmt: skip
                        assert done.returncode == 0, (line, done.stderr)
                        outputs[line] = done.stdout
                        password_file = setup.folder / "prod.password"
                        if password_file.exists() and not admin.execute_command("ACL", "GETUSER", user):
                            password = password_file.read_text().strip()
                            admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
        finally:
            admin.execute_command("ACL", "DELUSER", user)
    assert oct((setup.folder / "prod.password").stat().st_mode & 0o777) == "0o600"
    (pulled,) = [json.loads(out) for line, out in outputs.items() if "PSCTL_PROFILE=prod psctl pull" in line]
    assert pulled == [{"key": "job-1", "value": "resize photo.jpg"}]
    (length,) = [json.loads(out) for line, out in outputs.items() if line.startswith("psctl len jobs --profile prod")]
    assert length == {"name": "jobs", "length": 1}
    with Redis.from_url(on_db(setup.url, 1)) as default:
        assert default.psnames() == []  # (the default section's server: only names ran there)


def test_the_reference_s_config_show_output_is_what_psctl_prints(setup: Setup) -> None:
    (config,) = blocks(REFERENCE, "toml")
    setup.folder.mkdir(parents=True)
    ca = make_ca(setup.folder, "prod-ca")  # (the page's /etc/ssl/prod-ca.pem: a CA file psctl can use)
    setup.write(config.replace("/etc/ssl/prod-ca.pem", str(ca)))
    setup.password_file(name="prod.password")
    (line,) = commands(blocks(REFERENCE, "sh")[0])
    done = setup.psctl(*shlex.split(line)[1:])
    assert done.returncode == 0, done.stderr
    (documented, broken) = blocks(REFERENCE, "json")
    assert done.stdout.replace(str(ca), "/etc/ssl/prod-ca.pem").replace(str(setup.home), "/home/me") == documented
    # the page's example of a password file that cannot be read: every row, the problem in its own, exit 2
    (setup.folder / "prod.password").unlink()
    done = setup.psctl(*shlex.split(line)[1:])
    assert done.returncode == ExitStatus.USAGE
    assert done.stdout.replace(str(ca), "/etc/ssl/prod-ca.pem").replace(str(setup.home), "/home/me") == broken
    (message, _) = blocks(REFERENCE, "text")
    assert done.stderr.replace(str(setup.home), "/home/me") == message


def test_the_reference_s_url_message_is_what_psctl_prints(setup: Setup) -> None:
    (_, documented) = blocks(REFERENCE, "text")
    given = re.search(r"--url '([^']+)'", documented)[1]  # type: ignore[index]
    done = setup.psctl("--url", given, "len", "jobs")
    assert done.returncode == ExitStatus.USAGE and done.stderr == documented


def test_the_reference_names_every_variable_psctl_reads() -> None:
    source = "\n".join(path.read_text() for path in (ROOT / "psctl").rglob("*.py"))
    read = set(re.findall(r"""(?:environ\.get\(|environ\[|env\.get\(|env\[|envvar=|getenv\()["']([A-Z][A-Z_]+)["']""",
                          source))  # fmt: skip
    assert {"REDIS_URL", "PSCTL_PROFILE", "PSCTL_TIMEOUT", "XDG_CONFIG_HOME"} <= read
    text = REFERENCE.read_text()
    table = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    for name in (name for name in read if not name.endswith("_")):  # (not a prefix: HTTP_ headers)
        assert f"`{name}`" in table, name
    for key in ("url", "cluster", "timeout", "username", "password_file", "tls_ca"):
        assert f"| `{key}` |" in text, key


def test_the_config_commands_are_documented_with_examples() -> None:
    text = REFERENCE.read_text() + HOWTO.read_text()
    for command in ("psctl config show", "psctl config path"):
        assert re.search(rf"^psctl (--profile \w+ )?{command[6:]}", text, re.MULTILINE), command


def test_a_timeout_flag_too_short_is_refused_as_the_file_s_is(setup: Setup) -> None:
    """(One check for both: the flag's had a message of its own.)"""
    line = setup.cli().fails(ExitStatus.USAGE, "--timeout", "0.001", "len", "jobs", env=setup.clean())
    assert line == "psctl: --timeout must be from 0.01 to 1,000,000,000 seconds, got 0.001"
