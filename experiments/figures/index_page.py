"""The index of `unfoldkit reproduce all`: index.json (every number the pages show), index.md and a
self-contained index.html (inline CSS, each figure embedded as a base64 PNG, links to its PDF and JSON) in the
output folder, each written atomically.

Per entry: its title, the paper figure or study it corresponds to, its caption paragraph, the figure, the
verdict table (name, state, tightness) and its run time; a summary on top (entries, whether every verdict
holds, total time, mode, seed, unfoldkit version, date). The page helpers (CSS, tables, embedded figures)
are those of the check report, ``experiments/report/render.py``.
"""
from __future__ import annotations

import datetime
import html
import math
from pathlib import Path
from typing import Any

from unfoldkit.experiments.figures import Figure
from unfoldkit.experiments.figures.output import figure_paths
from unfoldkit.experiments.report import render
from unfoldkit.unrolled.io import read_json, write_json, write_text

#: the files of the index, in --out
INDEX_FILES = ("index.json", "index.md", "index.html")
SCHEMA = "unfoldkit-reproduce-all/1"

#: an entry's status: computed by this invocation, kept from an earlier one, raised an exception, or not yet run
RAN, SKIPPED, FAILED, PENDING = "ran", "skipped", "FAILED", "not run"
#: CSS classes of the page's state cells (those of the check report: green, red, grey)
CLASSES = {"holds": "ok", "VIOLATED": "bad", "violated": "bad", "not applicable": "nc",
           RAN: "ok", SKIPPED: "ok", FAILED: "bad", PENDING: "nc"}


# ---- verdicts ------------------------------------------------------------------------------------


def verdict_state(verdict: dict[str, Any]) -> str:
    """A verdict's state ("holds", "VIOLATED", "not applicable"): ``verdict["state"]`` when present, else from
    ``verdict["holds"]``."""
    return verdict.get("state") or ("holds" if verdict.get("holds") else "VIOLATED")


def tightness_text(verdict: dict[str, Any]) -> str:
    """A verdict's tightness to 3 digits; missing, None or NaN (a bound that does not apply) is ``n/a``."""
    tightness = verdict.get("tightness")
    if isinstance(tightness, str):  # JSON keeps infinities as "inf" / "-inf"
        return tightness
    if tightness is None or (isinstance(tightness, float) and math.isnan(tightness)):
        return "n/a"
    return f"{tightness:.3g}"


def compact_verdicts(verdicts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{name: {"state", "holds", "tightness"}}: what the index keeps of a figure's verdicts."""
    return {name: {"state": verdict_state(v), "holds": bool(v.get("holds", verdict_state(v) == "holds")),
                   "tightness": v.get("tightness")} for name, v in (verdicts or {}).items()}


# ---- the index document --------------------------------------------------------------------------


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def new_entry(figure: Figure) -> dict[str, Any]:
    """An entry of the index for ``figure`` before it runs."""
    return {"name": figure.NAME, "description": figure.DESCRIPTION, "paper": figure.paper,
            "caption": figure.caption or figure.DESCRIPTION, "status": PENDING, "seconds": None,
            "all_hold": None, "verdicts": {}, "error": None, "finished": None,
            "files": [p.name for p in figure_paths(".", figure.NAME)]}


def previous_entries(out_dir: str | Path, mode: str, seed: int) -> dict[str, dict[str, Any]]:
    """The entries of an earlier index.json in ``out_dir`` with the same mode and seed ({} if none or
    unreadable): where a skipped entry's run time comes from."""
    path = Path(out_dir) / "index.json"
    try:
        doc = read_json(path)
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("mode") != mode or doc.get("seed") != seed:
        return {}
    return {e["name"]: e for e in doc.get("entries", []) if isinstance(e, dict) and "name" in e}


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Counts and totals over ``doc["entries"]``: entries, ran / skipped / failed / not run, verdicts, whether
    every entry finished with every verdict holding, and the total run time of the figures."""
    entries = doc["entries"]
    count = {s: sum(e["status"] == s for e in entries) for s in (RAN, SKIPPED, FAILED, PENDING)}
    verdicts = [v for e in entries for v in e["verdicts"].values()]
    violated = [e["name"] for e in entries if e["all_hold"] is False]
    seconds = [e["seconds"] for e in entries if e["seconds"] is not None]
    return {"entries": len(entries), "ran": count[RAN], "skipped": count[SKIPPED], "failed": count[FAILED],
            "not_run": count[PENDING], "verdicts": len(verdicts),
            "verdicts_holding": sum(v["state"] == "holds" for v in verdicts),
            "verdicts_not_applicable": sum(v["state"] == "not applicable" for v in verdicts),
            "violated_entries": violated,
            "all_hold": count[FAILED] == 0 and count[PENDING] == 0 and not violated,
            "seconds_total": sum(seconds)}


def summary_line(doc: dict[str, Any]) -> str:
    """The one-line verdict of the whole run (printed last and shown on top of the pages)."""
    s = doc["summary"]
    head = f"{s['entries']} entries ({s['ran']} ran, {s['skipped']} kept from an earlier run"
    head += f", {s['failed']} failed" if s["failed"] else ""
    head += f", {s['not_run']} not run" if s["not_run"] else ""
    head += ")"
    if s["all_hold"]:
        na = s.get("verdicts_not_applicable", 0)
        return f"{head}: every applicable verdict holds" + (f" ({na} not applicable)" if na else "")
    problems = []
    if s["failed"]:
        problems.append("an entry FAILED")
    if s["violated_entries"]:
        problems.append("a verdict does not hold in " + ", ".join(s["violated_entries"]))
    if s["not_run"]:
        problems.append("the run was interrupted")
    return f"{head}: " + "; ".join(problems)


def write_index(doc: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Update ``doc["summary"]`` and ``doc["updated"]``, then write index.json, index.md and index.html into
    ``out_dir``, each atomically; return their paths."""
    out = Path(out_dir)
    doc["summary"] = summary(doc)
    doc["updated"] = now()
    return [write_json(out / "index.json", doc), write_text(out / "index.md", render_md(doc)),
            write_text(out / "index.html", render_html(doc, out))]


# ---- rendering -----------------------------------------------------------------------------------


def _seconds(entry: dict[str, Any]) -> str:
    if entry["seconds"] is None:
        return "n/a"
    text = f"{entry['seconds']:.1f} s"
    return f"{text} (earlier run)" if entry["status"] == SKIPPED else text


def _verdict_rows(entry: dict[str, Any]) -> list[list[str]]:
    return [[name, v["state"], tightness_text(v)] for name, v in entry["verdicts"].items()]


def _facts(doc: dict[str, Any]) -> list[list[str]]:
    s = doc["summary"]
    unknown = sum(e["status"] == SKIPPED and e["seconds"] is None for e in doc["entries"])
    unknown_text = f"; the times of {unknown} kept entries are not known (no earlier index.json)" if unknown else ""
    return [["entries", f"{s['entries']} ({s['ran']} ran now, {s['skipped']} kept from an earlier run, "
                        f"{s['failed']} failed, {s['not_run']} not run)"],
            ["verdicts", _verdict_counts(s["verdicts_holding"], s["verdicts_not_applicable"], s["verdicts"])],
            ["total time", f"{s['seconds_total']:.1f} s over the figures ({s['seconds_total'] / 60:.1f} min); "
                           f"this invocation {doc.get('wall_s', 0.0):.1f} s{unknown_text}"],
            ["mode", doc["mode"] + (" (small sizes)" if doc["mode"] == "quick" else " (paper scale)")],
            ["seed", str(doc["seed"])], ["unfoldkit", str(doc["version"])],
            ["date (UTC)", doc["updated"]], ["command", doc.get("command", "")]]


def _verdict_counts(holding: int, not_applicable: int, total: int) -> str:
    other = total - holding - not_applicable
    return ", ".join([f"{holding} of {total} hold"] + ([f"{not_applicable} not applicable"] if not_applicable else [])
                     + ([f"{other} VIOLATED"] if other else []))


def _contents_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for e in doc["entries"]:
        states = [v["state"] for v in e["verdicts"].values()]
        counts = _verdict_counts(states.count("holds"), states.count("not applicable"), len(states))
        rows.append([e["name"], e["status"], counts if e["verdicts"] else "n/a",
                     _seconds(e), e["paper"] or "n/a"])
    return rows


_CONTENTS_HEADER = ["figure", "status", "verdicts", "time", "paper"]


def render_md(doc: dict[str, Any]) -> str:
    """index.md: the summary, a table of contents, then per entry its paper, caption, figure, files, verdicts."""
    lines = ["# unfoldkit reproduce all", "", f"**{summary_line(doc)}**", ""]
    lines += render.md_table(["", ""], _facts(doc)) + [""]
    lines += render.md_table(_CONTENTS_HEADER, _contents_rows(doc)) + [""]
    for e in doc["entries"]:
        png, pdf, js = e["files"]
        lines += [f"## {e['name']}: {e['description']}", "", f"**Paper:** {e['paper'] or 'n/a'}", "",
                  e["caption"], ""]
        if e["status"] == FAILED:
            lines += [f"**FAILED:** `{e['error']}`", ""]
        elif e["status"] == PENDING:
            lines += ["*not run yet (interrupted); run the same command again to continue*", ""]
        else:
            lines += [f"![{e['name']}]({png})", "", f"Files: [{png}]({png}), [{pdf}]({pdf}), [{js}]({js}); "
                                                   f"run time {_seconds(e)}", ""]
            if e["verdicts"]:
                lines += render.md_table(["verdict", "state", "tightness"], _verdict_rows(e)) + [""]
    return "\n".join(lines)


INDEX_CSS = """
.paper{background:#f4f6fb;border-left:4px solid #7a8fc2;padding:.4em .8em;font-size:.92em}
.caption{text-align:justify}
.error{background:#f8d0d0;color:#7a0d0d;padding:.5em 1em;border-radius:4px;font-family:monospace;white-space:pre-wrap}
.files{font-size:.9em}
section.entry{border-top:1px solid #ddd;margin-top:2em}
#contents + table td:first-child,#contents + table td:nth-child(4){white-space:nowrap}
"""


def render_html(doc: dict[str, Any], out_dir: str | Path) -> str:
    """index.html, self-contained: inline CSS, each entry's NAME.png from ``out_dir`` embedded as a
    data:image/png;base64 URI, relative links to its PNG, PDF and JSON beside the page."""
    e = html.escape
    out = Path(out_dir)
    ok = doc["summary"]["all_hold"]
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<title>unfoldkit reproduce all</title>", f"<style>{render.CSS}{INDEX_CSS}</style>",
             "</head><body>", "<h1>unfoldkit reproduce all</h1>",
             f"<div class=\"summary {'ok' if ok else 'bad'}\">{e(summary_line(doc))}</div>",
             render.html_table([], _facts(doc))]
    contents = [[f"<a href=\"#{e(r[0])}\">{e(r[0])}</a>"] + [e(c) for c in r[1:]] for r in _contents_rows(doc)]
    parts += ["<h2 id=\"contents\">Contents</h2>",
              render.html_table(_CONTENTS_HEADER, contents, state_column=1, classes=CLASSES, escaped=True)]
    for entry in doc["entries"]:
        name = entry["name"]
        png, pdf, js = entry["files"]
        parts.append(f"<section class=\"entry\" id=\"{e(name)}\">")
        parts.append(f"<h2>{e(name)}: {e(entry['description'])}</h2>")
        parts.append(f"<p class=\"paper\"><b>Paper:</b> {e(entry['paper'] or 'n/a')}</p>")
        parts.append(f"<p class=\"caption\">{e(entry['caption'])}</p>")
        if entry["status"] == FAILED:
            parts.append(f"<div class=\"error\">FAILED: {e(str(entry['error']))}</div>")
        elif entry["status"] == PENDING:
            parts.append("<p class=\"note\">not run yet (interrupted): run the same command again to continue</p>")
        else:
            image = out / png
            if image.exists():
                parts.append(render.figure_html(f"{name}: {entry['description']}", image.read_bytes(),
                                                   show_caption=False))
            else:
                parts.append(f"<p class=\"note\">{e(png)} is missing from this folder</p>")
            parts.append(f"<p class=\"files\">Files: <a href=\"{e(png)}\">{e(png)}</a> &middot; "
                         f"<a href=\"{e(pdf)}\">{e(pdf)}</a> &middot; <a href=\"{e(js)}\">{e(js)}</a> "
                         f"(every number) &middot; run time {e(_seconds(entry))}</p>")
            if entry["verdicts"]:
                parts.append(render.html_table(["verdict", "state", "tightness"], _verdict_rows(entry),
                                               state_column=1, classes=CLASSES))
        parts.append("</section>")
    parts.append(f"<p class=\"note\">index schema {e(doc['schema'])}; every number is in index.json and "
                 f"each figure's JSON</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["FAILED", "INDEX_FILES", "PENDING", "RAN", "SKIPPED", "compact_verdicts", "new_entry", "now",
           "previous_entries", "render_html", "render_md", "summary", "summary_line", "tightness_text",
           "verdict_state", "write_index"]
