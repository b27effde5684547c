"""``kvopt report``: a gap report of methods and programs over suites.

Writes into the output folder:

* ``results.json`` — the results document (``kvopt.bench.results``), also the
  input of ``kvopt regress``;
* ``results.csv`` — one row per (suite, case, method);
* ``report.md`` — summary tables, mean gap per suite and method, the cases where
  the methods differ (the worst gap of each case in bold), failures; plots as
  files under ``plots/``;
* ``report.html`` — the same, self-contained: plots embedded as base64 PNG and
  gap cells coloured from green (0 %) to red (the largest gap in the table).
"""

from __future__ import annotations

import base64
import csv
import html
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from kvopt.bench import plots
from kvopt.bench.isolation import describe
from kvopt.bench.results import write_results

CSV_COLUMNS = ("suite", "case", "method", "kind", "role", "num_models", "num_gpus", "valid", "failure", "reason",
               "status", "peak_kvpr", "peak_kvpr_exact", "reference", "reference_exact", "reference_status",
               "reference_source", "reference_missing", "gap", "optimal", "lower_bound", "seconds")
SAME_GAP = 1e-9

PLOTS: tuple[tuple[str, str], ...] = (
    ("gap_per_case", "Gap per case"),
    ("gap_distribution", "Gap distribution"),
    ("time_vs_size", "Time vs instance size"),
    ("worst_case_gpus", "KVPR per GPU on the worst case"),
    ("move_frontier", "Peak vs move budget (stored exact frontiers)"),
)


# -- shared views of the document -----------------------------------------------------
def method_names(document: Mapping[str, Any]) -> list[str]:
    return [m["name"] for m in document["methods"]]


def suite_names(document: Mapping[str, Any]) -> list[str]:
    return [s["name"] for s in document["suites"]]


def method_rows(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in document["cases"] if r["role"] == "method"]


def percent(gap: Any) -> str:
    if gap is None:
        return "-"
    value = float(gap)
    return "inf" if math.isinf(value) else f"{100 * value:.2f}%"


def number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    value = float(value)
    return "inf" if math.isinf(value) else f"{value:.{digits}g}"


def summary_table(document: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = ["method", "cases", "valid", "optimal", "mean gap", "median gap", "max gap", "score_legacy",
               "score_bounded", "seconds", "no stored ref"]
    rows = []
    for method, s in document["summary"].items():
        missing = int(s.get("missing_references", 0))
        rows.append([method, str(s["cases"]), str(s["valid"]), str(s["optimal"]), percent(s["mean_gap"]),
                     percent(s["median_gap"]), percent(s["max_gap"]), number(s["score_legacy"]),
                     number(s["score_bounded"]), f"{float(s['seconds']):.2f}", f"{missing} !" if missing else "0"])
    return headers, rows


def missing_reference_note(document: Mapping[str, Any]) -> str | None:
    """A warning sentence when some cases have no stored reference optimum, else ``None``."""
    cases = {(r["suite"], r["case"]) for r in method_rows(document) if r.get("reference_missing")}
    if not cases:
        return None
    return (f"Warning: {len(cases)} case(s) have no stored reference optimum (marked \"no stored ref\"): their "
            "gaps are against this run's exact result or a lower bound, not comparable with gaps against "
            "stored optima.")


def suite_gap_matrix(document: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Rows ``[suite, cases, mean gap of each method...]`` (``None`` where no gap)."""
    methods = method_names(document)
    rows = []
    for suite, per_method in document["by_suite"].items():
        if not per_method:
            continue
        cases = max(s["cases"] for s in per_method.values())
        rows.append([suite, cases, *[per_method.get(m, {}).get("mean_gap") for m in methods]])
    return ["suite", "cases", *methods], rows


def differing_cases(document: Mapping[str, Any]) -> tuple[list[list[Any]], int]:
    """Cases where the methods do not all reach the same gap (or one failed), and how many agree.

    Each row: ``[suite, case, models, gpus, reference, reference status, {method: record}]``.
    """
    methods = method_names(document)
    by_case: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for r in method_rows(document):
        by_case.setdefault((r["suite"], r["case"]), {})[r["method"]] = r
    rows, agreeing = [], 0
    for (suite, case), per_method in by_case.items():
        scores = [case_score(per_method[m]) for m in methods if m in per_method]
        known = [v for v in scores if v is not None]
        if len(known) == len(scores) and max(known) - min(known) <= SAME_GAP * max(1.0, abs(min(known))):
            agreeing += 1
            continue
        first = next(iter(per_method.values()))
        rows.append([suite, case, first["num_models"], first["num_gpus"], first.get("reference"),
                     first.get("reference_status"), per_method])
    return rows, agreeing


def case_score(record: Mapping[str, Any]) -> float | None:
    """What ranks methods on one case (lower is better): the gap, or the peak when no reference is known.

    Both order the methods of a case the same way, since they share its reference.
    """
    if not record["valid"]:
        return None
    value = record.get("gap") if record.get("gap") is not None else record.get("peak_kvpr")
    return None if value is None else float(value)


def worst_method(per_method: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The methods with the worst result on a case: failed ones, else the largest gap (or peak)."""
    failed = {m for m, r in per_method.items() if not r["valid"]}
    if failed:
        return failed
    scores = {m: case_score(r) for m, r in per_method.items()}
    known = {m: v for m, v in scores.items() if v is not None}
    if len(known) < 2:
        return set()
    top, low = max(known.values()), min(known.values())
    if top - low <= SAME_GAP * max(1.0, abs(low)):
        return set()
    return {m for m, v in known.items() if v >= top - SAME_GAP * max(1.0, abs(top))}


def cell_text(record: Mapping[str, Any] | None) -> str:
    if record is None:
        return "skipped"
    if not record["valid"]:
        return f"invalid ({record['failure']})"
    return percent(record.get("gap")) if record.get("gap") is not None else number(record["peak_kvpr"])


def reference_text(value: Any, status: str | None, missing: bool = False) -> str:
    """The reference value and its kind; ``missing`` marks a case without a stored reference."""
    mark = ", no stored ref !" if missing else ""
    return "-" + (" (no stored ref !)" if missing else "") if value is None else f"{number(value, 6)} ({status}{mark})"


def lacks_stored_reference(per_method: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(r.get("reference_missing") for r in per_method.values())


def failures(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in method_rows(document) if not r["valid"]]


def describe_reference() -> str:
    return ("Gap = peak KVPR / reference - 1. Reference: the stored optimum (instances/<suite>/reference.json) "
            "when present, else this run's exact result, else the best known lower bound. "
            "A case counts as optimal when its gap is <= 1e-9 against a proven optimum or lower bound.")


# -- files ---------------------------------------------------------------------------
def render_plots(document: Mapping[str, Any]) -> dict[str, bytes]:
    records = method_rows(document)
    methods, suites = method_names(document), suite_names(document)
    makers: dict[str, Callable[[], bytes]] = {
        "gap_per_case": lambda: plots.gap_per_case(records, suites, methods),
        "gap_distribution": lambda: plots.gap_distribution(records, methods),
        "time_vs_size": lambda: plots.time_vs_size(records, methods),
        "worst_case_gpus": lambda: plots.worst_case_gpus(records, methods),
        "move_frontier": lambda: plots.move_frontier(document.get("frontiers") or {}),
    }
    # The frontier plot only where a suite stores frontiers (the replan family).
    return {name: makers[name]() for name, _ in PLOTS if name != "move_frontier" or document.get("frontiers")}


def write_report(document: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write results.json, results.csv, report.md (+ plots/*.png) and report.html into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = render_plots(document)
    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    written = [write_results(document, out / "results.json"), write_csv(document, out / "results.csv")]
    for name, png in images.items():
        path = plot_dir / f"{name}.png"
        path.write_bytes(png)
        written.append(path)
    md = out / "report.md"
    md.write_text(markdown_report(document, {name: f"plots/{name}.png" for name in images}))
    page = out / "report.html"
    page.write_text(html_report(document, images))
    return [*written, md, page]


def write_csv(document: Mapping[str, Any], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in document["cases"]:
            writer.writerow(["" if r.get(c) is None else r.get(c) for c in CSV_COLUMNS])
    return path


# -- markdown ------------------------------------------------------------------------
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+!|~"})


def md_text(text: Any) -> str:
    """Text shown literally in Markdown: no emphasis, links, raw HTML or table breaks from a program's words."""
    return str(text).replace("\n", " ").translate(_MD_SPECIAL)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def header_lines(document: Mapping[str, Any], code: Callable[[str], str] = lambda text: f"`{text}`") -> list[str]:
    suites = ", ".join(f"{s['name']} ({len(s['cases'])} cases)" for s in document["suites"])
    settings = document["settings"]
    lines = [f"Suites: {suites}.", f"Methods: {', '.join(method_names(document))}.",
             f"Program limits: {settings['timeout_s']:g} s and {settings['memory_mb']} MB per case; "
             f"exact time limit {settings['exact_time_limit_s']:g} s per case.",
             f"Isolation of programs: {describe(settings.get('isolation'))}.",
             f"Wall time: {float(document['wall_seconds']):.1f} s."]
    if document.get("command"):
        lines.append(f"Command: {code(document['command'])}")
    return lines


def markdown_report(document: Mapping[str, Any], image_paths: Mapping[str, str]) -> str:
    methods = method_names(document)
    parts = ["# kvopt gap report", "", *header_lines(document), "", describe_reference(), ""]
    note = missing_reference_note(document)
    if note:
        parts += [f"**{note}**", ""]
    parts += ["## Summary", ""]
    parts.append(md_table(*summary_table(document)))
    headers, matrix = suite_gap_matrix(document)
    parts += ["", "## Mean gap by suite", "", "Lower is better; the worst method of each suite in bold.", ""]
    md_rows = []
    for suite, cases, *gaps in matrix:
        finite = [g for g in gaps if g is not None]
        top = max(finite) if finite else None
        md_rows.append([suite, str(cases), *[(f"**{percent(g)}**" if g is not None and top is not None and
                                              top > SAME_GAP and g >= top - SAME_GAP else percent(g)) for g in gaps]])
    parts.append(md_table(headers, md_rows))
    rows, agreeing = differing_cases(document)
    parts += ["", "## Cases where the methods differ", "",
              f"{len(rows)} case(s) listed; {agreeing} case(s) where every method reaches the same gap are "
              "omitted. The worst result of each case is in bold.", ""]
    table_rows = []
    for suite, case, models, gpus, ref, ref_status, per_method in rows:
        worst = worst_method(per_method)
        cells = [(f"**{cell_text(per_method.get(m))}**" if m in worst else cell_text(per_method.get(m)))
                 for m in methods]
        table_rows.append([suite, case, str(models), str(gpus),
                           reference_text(ref, ref_status, lacks_stored_reference(per_method)), *cells])
    if table_rows:
        parts.append(md_table(["suite", "case", "models", "gpus", "reference", *methods], table_rows))
    failed = failures(document)
    if failed:
        parts += ["", "## Failures", ""]
        parts += [f"- {r['suite']}/{r['case']} — {r['method']}: {md_text(r['reason'])}" for r in failed]
    if document.get("skipped"):
        parts += ["", "## Skipped", ""]
        parts += [f"- {s['suite']}/{s['case']} — {s['method']}: {md_text(s['reason'])}" for s in document["skipped"]]
    parts += ["", "## Plots", ""]
    for name, title in PLOTS:
        if name in image_paths:
            parts += [f"### {title}", "", f"![{title}]({image_paths[name]})", ""]
    return "\n".join(parts).rstrip() + "\n"


# -- html ----------------------------------------------------------------------------
CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; }
td.l, th.l { text-align: left; }
td.worst { font-weight: bold; outline: 2px solid #b71c1c; }
td.bad { background: #ef9a9a; }
img { max-width: 100%; border: 1px solid #eee; margin-bottom: 1em; }
p.note { color: #555; font-size: 13px; }
p.warning { color: #a00; font-size: 15px; }
"""


def gap_color(gap: float | None, scale: float) -> str:
    """White-green at 0 to red at ``scale`` (the table's largest gap)."""
    if gap is None:
        return "#ffffff"
    t = 1.0 if math.isinf(gap) else max(0.0, min(1.0, gap / scale)) if scale > 0 else 0.0
    low, high = (232, 245, 233), (239, 83, 80)
    r, g, b = (round(a + (c - a) * t) for a, c in zip(low, high))
    return f"#{r:02x}{g:02x}{b:02x}"


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Rows of pre-rendered ``<td>`` cells (strings starting with ``<td``) or plain text."""
    head = "".join(f'<th class="l">{html.escape(h)}</th>' if i < left else f"<th>{html.escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if isinstance(cell, str) and cell.startswith("<td"):
                cells.append(cell)
            else:
                cls = ' class="l"' if i < left else ""
                cells.append(f"<td{cls}>{html.escape(str(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def gap_cell(record: Mapping[str, Any] | None, scale: float, worst: bool) -> str:
    classes = ["worst"] if worst else []
    if record is None:
        return '<td>skipped</td>'
    if not record["valid"]:
        title = html.escape(str(record["reason"]), quote=True)
        return f'<td class="bad {" ".join(classes)}" title="{title}">invalid ({html.escape(record["failure"])})</td>'
    gap = record.get("gap")
    style = f' style="background:{gap_color(None if gap is None else float(gap), scale)}"'
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{cls}{style}>{html.escape(cell_text(record))}</td>"


def html_report(document: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    methods = method_names(document)
    all_gaps = [float(r["gap"]) for r in method_rows(document)
                if r.get("gap") is not None and math.isfinite(float(r["gap"]))]
    scale = max(all_gaps + [1e-12])
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>kvopt gap report</title>"
           f"<style>{CSS}</style></head><body>", "<h1>kvopt gap report</h1>"]
    out += [f"<p class='note'>{html.escape(line)}</p>" for line in header_lines(document, code=str)]
    out.append(f"<p class='note'>{html.escape(describe_reference())} Cell colour: green 0 % to red "
               f"{percent(scale)} (the largest gap).</p>")
    note = missing_reference_note(document)
    if note:
        out.append(f"<p class='warning'><strong>{html.escape(note)}</strong></p>")
    out.append("<h2>Summary</h2>")
    out.append(html_table(*summary_table(document)))
    headers, matrix = suite_gap_matrix(document)
    out.append("<h2>Mean gap by suite</h2><p class='note'>Lower is better; the worst method of each suite "
               "is outlined.</p>")
    rows = []
    for suite, cases, *gaps in matrix:
        finite = [g for g in gaps if g is not None]
        top = max(finite) if finite else None
        cells: list[str] = [suite, str(cases)]
        for g in gaps:
            worst = g is not None and top is not None and top > SAME_GAP and g >= top - SAME_GAP
            cls = ' class="worst"' if worst else ""
            cells.append(f"<td{cls} style=\"background:{gap_color(None if g is None else float(g), scale)}\">"
                         f"{html.escape(percent(g))}</td>")
        rows.append(cells)
    out.append(html_table(headers, rows))
    for name, title in PLOTS[:2]:
        out.append(image_html(title, images.get(name)))
    diff_rows, agreeing = differing_cases(document)
    out.append(f"<h2>Cases where the methods differ</h2><p class='note'>{len(diff_rows)} case(s) listed; "
               f"{agreeing} case(s) where every method reaches the same gap are omitted. The worst result of "
               "each case is outlined; hover an invalid cell for the reason.</p>")
    rows = []
    for suite, case, models, gpus, ref, ref_status, per_method in diff_rows:
        worst = worst_method(per_method)
        rows.append([suite, case, str(models), str(gpus),
                     reference_text(ref, ref_status, lacks_stored_reference(per_method)),
                     *[gap_cell(per_method.get(m), scale, m in worst) for m in methods]])
    if rows:
        out.append(html_table(["suite", "case", "models", "gpus", "reference", *methods], rows, left=2))
    for name, title in PLOTS[2:]:
        out.append(image_html(title, images.get(name)))
    failed = failures(document)
    if failed:
        out.append("<h2>Failures</h2><ul>")
        out += [f"<li>{html.escape(r['suite'])}/{html.escape(r['case'])} — {html.escape(r['method'])}: "
                f"{html.escape(str(r['reason']))}</li>" for r in failed]
        out.append("</ul>")
    if document.get("skipped"):
        out.append(f"<h2>Skipped</h2><p class='note'>{len(document['skipped'])} case(s): "
                   f"{html.escape(document['skipped'][0]['reason'])}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def image_html(title: str, png: bytes | None) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
