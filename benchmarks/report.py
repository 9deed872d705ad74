"""The report: one Markdown table (readable on a terminal, pasteable in the README)."""

from __future__ import annotations

from dataclasses import replace

from benchmarks.harness import Row, Stats

HEADER = ("case", "psctl", "unit", "baseline min–median–max", "psctl min–median–max", "ratio", "target", "verdict")


def number(x: float) -> str:
    """Three significant digits, with k / M for large figures."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= 10 * scale:
            return f"{x / scale:.3g}{suffix}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def spread(stats: Stats | None) -> str:
    if stats is None:
        return "—"
    return f"{number(stats.min)} – {number(stats.median)} – {number(stats.max)}"


def cells(row: Row) -> tuple[str, ...]:
    return (
        row.case,
        row.measure,
        row.unit.value,
        spread(row.baseline),
        spread(row.psctl),
        "—" if row.ratio is None else f"{row.ratio:.2f}×",
        "—" if row.target is None else str(row.target) + (f" {row.unit.value}" if row.target.absolute else ""),
        row.verdict,
    )


def fold_skipped(rows: list[Row]) -> list[Row]:
    """Rows of cases skipped one after another for the same reason, as one
    row naming them all (a missing tool skips a group of cases at once)."""
    out: list[Row] = []
    for row in rows:
        last = out[-1] if out else None
        if last is not None and row.verdict.startswith("skipped") and row.verdict == last.verdict:
            out[-1] = replace(last, case=f"{last.case}, {row.case}")
        else:
            out.append(row)
    return out


def table(rows: list[Row]) -> str:
    lines = [HEADER, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]

    def render(line: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:])])


def legend(rows: list[Row]) -> str:
    seen: dict[str, str] = {}
    for row in rows:
        if row.against and row.case != "longest call":
            seen.setdefault(row.case, row.against)
    out = ["Baselines (ratio = psctl / baseline, of the medians; for µs/call and ms/run lower is better):"]
    out += [f"- {case}: {label}" for case, label in seen.items()]
    if any(row.verdict == "(for comparison)" for row in rows):
        out.append(
            "- (for comparison): a figure issue 5 sets no target for, shown beside those it explains; "
            "pull + cool-down is pspull's default (a 1-day cool-down) against a baseline that writes the "
            "cool-down too; the cluster cases run on 3 masters over loopback TCP (the others: a unix socket)"
        )
    if any(row.case == "longest call" for row in rows):
        out.append(
            "- longest call: time inside the server per command (SLOWLOG, network excluded) in one run of the "
            "case: every command of its baseline vs every EVALSHA of psctl; of 3 runs, the one whose longest "
            "command was the shortest; the target applies to that longest command"
        )
    return "\n".join(out)


def summary(rows: list[Row]) -> str:
    judged = [row for row in rows if row.target is not None]
    missed = [row for row in judged if not row.verdict.startswith("met")]
    skipped = [row for row in rows if row.verdict.startswith("skipped")]
    failed = [row for row in rows if row.failed]
    parts = [f"{len(judged) - len(missed)}/{len(judged)} targets met"]
    if skipped:
        parts.append(f"{len(skipped)} skipped")
    if failed:
        parts.append(f"{len(failed)} FAILED")
    return ", ".join(parts)

