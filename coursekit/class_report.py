"""Stage: the class report, reports/<assignment>/index.html, one page for staff to look at.

What it shows: the distribution of totals, each step's average score as a share of
its points, the hidden checks failed most often (with their most common hint and
how many made that mistake), the students awaiting manual grading, and a row per
student with a link to their feedback page. It is built from the rows that
grades.csv and checks.csv hold, so it follows the gradebook as they do.

The page is self-contained: its plots are PNG images inside it and it has no
script and asks nothing of the network, so it opens from disk, offline, or
attached to an e-mail. Every text in it is escaped: hints and messages can
quote what a student wrote.
"""
from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from .report import failed_checks

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; } .pending { color: #a60; } .failed { color: #b00; }
figure { margin: 0.5em 0; } figcaption { color: #555; font-size: 0.9em; }
"""


def figure_png(draw, width: float = 6.4, height: float = 3.0) -> str:
    """A matplotlib figure drawn by `draw(axes)`, as a data: URL of a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display; nothing but the PNG
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(figsize=(width, height), dpi=100)
    try:
        draw(axes)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def totals_plot(totals: list[float], max_total: float) -> str:
    def draw(axes):
        bins = max(1, min(20, int(max_total) or 1))
        axes.hist(totals, bins=bins, range=(0, max_total or 1), color="#4c72b0", edgecolor="white")
        axes.set_xlabel(f"total (of {max_total:g} points)")
        axes.set_ylabel("students")
        axes.yaxis.get_major_locator().set_params(integer=True)
    return figure_png(draw)


def steps_plot(shares: list[tuple[str, float]]) -> str:
    def draw(axes):
        names = [name for name, _ in shares][::-1]
        values = [100 * share for _, share in shares][::-1]
        axes.barh(names, values, color="#55a868")
        axes.set_xlim(0, 100)
        axes.set_xlabel("average score, % of the step's points")
    return figure_png(draw, height=max(2.0, 0.35 * len(shares) + 1))


def step_shares(report: dict) -> list[tuple[str, float]]:
    """Each graded cell's average score over the students it was scored for, as a share of its points."""
    shares = []
    for name, points in report["columns"]:
        scores = [row["scores"][name] for row in report["rows"]
                  if row["status"] != "not graded" and row["scores"].get(name) is not None]
        if scores and points:
            shares.append((name.removeprefix("test_"), sum(scores) / len(scores) / points))
    return shares


def feedback_link(root: Path, folder: Path, student: str, assignment: str, notebook: str) -> str:
    page = root / "feedback" / student / assignment / f"{notebook}.html"
    if not page.exists():
        return ""
    relative = Path("..", "..", *page.relative_to(root).parts).as_posix()  # from reports/<a>/
    return f'<a href="{escape(relative)}">feedback</a>'


def write_class_report(root: Path, assignment: str, notebook: str, report: dict, checks: list[dict],
                       names: dict[str, str] | None = None, sections: list[str] | None = None) -> Path:
    """Write reports/<assignment>/index.html from the report's rows and checks.csv's rows; return its path.

    names: student -> the name the gradebook holds for them; sections: more HTML to append (trusted: made by the kit).
    """
    folder = report["folder"]
    names = names or {}
    rows = report["rows"]
    graded = [row for row in rows if row["status"] != "not graded"]
    pending = [row for row in rows if row["status"] == "graded (manual part pending)"]
    max_total = next((row["max_total"] for row in rows), 0.0)
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{escape(assignment)}: class report</title><style>{STYLE}</style></head><body>",
             f"<h1>{escape(assignment)}: class report</h1>",
             f"<p>{len(rows)} submission(s): {len(graded)} graded ({len(pending)} of them awaiting manual grading), "
             f"{len(rows) - len(graded)} not graded. Written from the gradebook by <code>coursekit report {escape(assignment)}</code>; "
             f"the same figures are in <code>grades.csv</code> and <code>checks.csv</code> beside this page.</p>"]

    parts.append("<h2>Totals</h2>")
    if graded:
        totals = [row["total"] for row in graded]
        ordered = sorted(totals)
        median = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
        parts.append(f'<figure><img id="totals-plot" alt="histogram of the graded students\' totals" src="{totals_plot(totals, max_total)}">'
                     f"<figcaption>Totals of the {len(graded)} graded submission(s): mean {sum(totals) / len(totals):.1f}, "
                     f"median {median:g} of {max_total:g} points (manual parts not yet graded count 0).</figcaption></figure>")
        shares = step_shares(report)
        if shares:
            parts.append("<h2>Steps</h2>")
            parts.append(f'<figure><img id="steps-plot" alt="each step\'s average score as a share of its points" src="{steps_plot(shares)}">'
                         "<figcaption>Each graded step's average score, as a share of its points.</figcaption></figure>")
    else:
        parts.append("<p>No submission is graded yet.</p>")

    ranked, untouched = failed_checks(checks)
    parts.append("<h2>Hidden checks failed most often</h2>")
    if ranked:
        parts.append("<table><tr><th>students</th><th>step</th><th>check</th><th>most common hint</th></tr>")
        for entry in ranked[:15]:
            parts.append(f'<tr><td class="num">{entry["students"]}</td><td>{escape(entry["step"])}</td>'
                         f'<td>{escape(entry["description"])}</td>'
                         f'<td>{escape(entry["hint"])} <em>({entry["hint_students"]} student(s) got this hint)</em></td></tr>')
        parts.append("</table>")
    else:
        parts.append("<p>No hidden check failed by a mistake.</p>")
    if untouched:
        parts.append("<p>Steps left untouched: " + ", ".join(f"{escape(step)} ({n})" for step, n in untouched.most_common()) + "</p>")

    parts.append("<h2>Awaiting manual grading</h2>")
    if pending:
        parts.append("<p>Grade these in formgrader (<code>coursekit lab</code>), then run <code>coursekit report "
                     f"{escape(assignment)}</code>:</p><ul>")
        for row in pending:
            cells = ", ".join(name for name, value in row["scores"].items() if value is None)
            parts.append(f'<li class="pending">{escape(row["student"])}: {escape(cells)}</li>')
        parts.append("</ul>")
    else:
        parts.append("<p>None.</p>")

    parts.append("<h2>Students</h2><table><tr><th>student</th><th>name</th><th>status</th><th>total</th><th>feedback</th><th>note</th></tr>")
    for row in rows:
        css = "failed" if row["status"] == "not graded" else "pending" if row in pending else ""
        parts.append(f'<tr class="{css}"><td>{escape(row["student"])}</td><td>{escape(names.get(row["student"], ""))}</td>'
                     f'<td>{escape(row["status"])}</td><td class="num">{row["total"]:g}/{row["max_total"]:g}</td>'
                     f'<td>{feedback_link(root, folder, row["student"], assignment, notebook)}</td><td>{escape(row["message"])}</td></tr>')
    parts.append("</table>")
    parts.extend(sections or [])
    parts.append("</body></html>\n")
    page = folder / "index.html"
    partial = page.with_suffix(".partial")
    partial.write_text("\n".join(parts), encoding="utf-8")
    partial.replace(page)
    return page
