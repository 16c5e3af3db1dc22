"""The three renderings of a check report (``build.build_report``): report.json (every number),
report.md (tables) and a self-contained report.html (inline CSS, figures embedded as base64 PNG data URIs,
no external URL). Every file is written atomically; a stress counterexample is saved beside them.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from unfoldkit.unrolled.io import write_json, write_text

STATE_CLASS = {"holds": "ok", "fails": "bad", "not covered": "nc"}


# ---- formatting ----------------------------------------------------------------------------------


def fmt(v: Any, digits: int = 4) -> str:
    """A number for a table: 4 significant digits; None -> "n/a"; strings unchanged."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, str):
        return v
    return f"{float(v):.{digits}g}"


def _float(v: Any) -> float:
    if v is None:
        return float("nan")
    return float(v)  # "inf" / "-inf" parse as floats


def _floats(a: Any) -> np.ndarray:
    return np.array([_float(v) for v in (a or [])], dtype=np.float64)


# ---- tables (shared by MD and HTML) ----------------------------------------------------------------


def tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) of every table, in the order shown; MD and HTML render the same list."""
    out: list[tuple[str, list[str], list[list[str]], str]] = []
    v = report["verdicts"]
    out.append(("Verdicts", ["check", "state", "detail"], [[r["check"], r["state"], r["detail"]] for r in v],
                "exit code {} ({} holds, {} fails, {} not covered)".format(
                    report["exit_code"], *(report["counts"][s] for s in ("holds", "fails", "not covered")))))
    m, p, d = report["model"], report["problem"], report["data"]
    rows = [["kind", m["kind"]], ["architecture", m["family"]], ["paradigm", fmt(m.get("paradigm"))],
            ["layers K", fmt(m["num_layers"])], ["source", report.get("source") or "n/a"],
            ["problem", p["repr"]], ["L, mu", f"{fmt(p['L'])}, {fmt(p['mu'])}"],
            ["test samples", fmt(d["test_samples"])], ["ground truth", fmt(d["ground_truth"])],
            ["training samples", fmt(d["train_samples"])]]
    if m.get("learned_count") is not None:
        rows.append(["learned numbers", fmt(m["learned_count"])])
    out.append(("Model", ["", ""], rows, "quick mode (smaller budgets)" if report["quick"] else ""))
    if m["parameters"]:
        out.append(("Parameters", ["name", "shape", "learned", "tied / per layer", "paradigm"],
                    [[q["name"], "x".join(map(str, q["shape"])) or "scalar", fmt(q["learned"]),
                      "tied" if q["tied"] else "per layer", fmt(m.get("paradigm"))] for q in m["parameters"]], ""))
    th = report["theorems"]
    arows = []
    for vd in th.get("verdicts", []):
        for a in vd.get("assumptions", []):
            arows.append([vd["name"], a["name"], fmt({True: "holds", False: "FAILS", None: "unchecked"}[a["holds"]]),
                          fmt(a.get("measured")), a["required"]])
    if arows:
        out.append(("Assumption checks", ["bound", "assumption", "state", "measured", "required"], arows, ""))
    lista = report.get("lista", {})
    if lista.get("applies"):
        lrows = [[a["name"], fmt({True: "holds", False: "FAILS", None: "unchecked"}[a["holds"]]),
                  fmt(a.get("measured")), a["required"]] for a in lista["assumptions"]]
        out.append((f"LISTA theory on X(B={fmt(lista['B'])}, s={lista['s']})",
                    ["assumption", "state", "measured", "required"], lrows,
                    f"measured decay per layer {fmt(lista['fitted_rate'])}, theoretical "
                    f"{fmt(lista['theoretical_rate'])}; {lista['num_samples']} samples"))
    cert = report.get("certified", {})
    if cert.get("applies"):
        crows = [[line.strip()] for line in cert["summary"].splitlines() if line.strip()][:12]
        out.append((f"Certified training ({cert['mechanism']})", ["certificate recomputed from scratch"], crows,
                    "holds" if cert["holds"] else "FAILS"))
    err = report["error"]
    if err.get("available"):
        mm = err["model"]
        hdr = ["layer", "model mean NMSE (dB)", "q5 (dB)", "median (dB)", "q95 (dB)", "worst (dB)"]
        algs = list(err["classical"])
        hdr += [f"{a.upper()} mean (dB)" for a in algs]
        erows = []
        for i, k in enumerate(err["layers"]):
            row = [str(k)] + [fmt(_db(mm[key][i])) for key in ("mean", "q05", "q50", "q95", "worst")]
            for a in algs:
                c = err["classical"][a]["mean_db"]
                row.append(fmt(c[k]) if k < len(c) else "n/a")
            erows.append(row)
        match = err["match"]
        note = (f"NMSE per layer in dB: mean = batch NMSE (sum of errors / sum of norms), quantiles and worst of "
                f"the per-instance NMSE; the classical algorithms run with step 1/L. "
                f"Depth to match the model's last layer (NMSE {fmt(match['target_nmse'])} on the first "
                f"{match['samples']} samples): " + "; ".join(r["text"] for r in match["results"].values()))
        out.append(("Per-layer error", hdr, erows, note))
        if err["bounds"]:
            brows = [[name, b["metric"], fmt(b["state"]), fmt(_maxf(b["measured_max"])), fmt(_maxf(b["bound_max"]))]
                     for name, b in err["bounds"].items()]
            out.append(("Bounds (applicable)", ["bound", "metric", "state", "measured (last layer)",
                                                "bound (last layer)"],
                        [[r[0], r[1], r[2], fmt(_last(err["bounds"][r[0]]["measured_max"])),
                          fmt(_last(err["bounds"][r[0]]["bound_max"]))] for r in brows], ""))
    else:
        out.append(("Per-layer error", ["", ""], [["not available", err.get("reason", "")]], ""))
    pep = report["pep"]
    if pep.get("applies"):
        out.append(("PEP worst case of the step schedule", ["bound", "state", "measured max (last layer)",
                                                           "PEP worst case (last layer)", "tightness"],
                    [[vd["name"], vd["state"], fmt(_last(vd["measured_max"])), fmt(_last(vd["bound_max"])),
                      fmt(vd.get("tightness"))] for vd in pep["verdicts"]],
                    "objective gap F(x_k) - F*; worst case over the function class with R = ||x_0 - x*|| per instance"))
    lip = report["lipschitz"]
    if lip.get("available"):
        methods = list(lip["upper"])
        lrows = []
        for k in range(lip["num_layers"]):
            lrows.append([str(k + 1)] + [fmt(lip["upper"][mt][k]) for mt in methods] +
                         [fmt(lip["best_upper"][k]), fmt(lip["lower"][k]), fmt(lip["ratio"][k])])
        note = ("certified" if lip["certified"] else f"no finite constant: {lip['reason']}") + \
            f"; computed in {fmt(lip.get('seconds_total'), 3)} s"
        out.append(("Lipschitz constant of y -> x_k", ["layer"] + methods + ["best upper", "lower", "ratio"],
                    lrows, note))
    gen = report["generalization"]
    if gen.get("available"):
        g = gen["gap"]
        grows = [["train risk", fmt(g["train_risk"])], ["test risk", fmt(g["test_risk"])],
                 ["gap (test - train)", fmt(g["gap"])], ["gap 95% CI", f"[{fmt(g['gap_ci'][0])}, {fmt(g['gap_ci'][1])}]"],
                 ["true risk (Hoeffding 95%)", f"[{fmt(g['test_interval'][0])}, {fmt(g['test_interval'][1])}]"]]
        for label, c in gen["certificates"].items():
            grows.append([f"{label} certificate", (f"risk <= {fmt(c['value'])} (delta {fmt(c['delta'])}"
                                                   f"{', vacuous' if c['vacuous'] else ''})") if c["available"]
                          else f"not covered: {c['reason']}"])
        out.append(("Generalization", ["", ""], grows, f"clipped NMSE loss, c = {fmt(gen['clip'])}"))
    else:
        out.append(("Generalization", ["", ""], [["not available", gen["reason"]]], ""))
    sr = report["stress"]
    if sr.get("run"):
        srows = [["target", sr["target"]], ["what", sr["what"]], ["examples", fmt(sr["examples"])]]
        srows += [[f"outcome: {k}", fmt(n)] for k, n in sr["counts"].items()]
        srows += [["errors", fmt(sr["errors"])], ["counterexample", sr.get("counterexample_file") or "none"],
                  ["seconds", fmt(sr["wall_s"], 3)]]
        out.append(("Stress run", ["", ""], srows, ""))
    else:
        out.append(("Stress run", ["", ""], [["not run", sr["reason"]]], ""))
    t = report["timings"]
    out.append(("Timings (s)", list(t), [[fmt(v, 3) for v in t.values()]], ""))
    return out


def _db(v: Any) -> Any:
    """10 log10 of an NMSE for display (None stays None)."""
    if v is None:
        return None
    f = _float(v)
    if f > 0:
        return 10.0 * np.log10(f)
    return "-inf" if f == 0 else None


def _last(a: Any) -> Any:
    return a[-1] if a else None


def _maxf(a: Any) -> Any:
    f = _floats(a)
    return float(np.nanmax(f)) if f.size and not np.all(np.isnan(f)) else None


# ---- figures -----------------------------------------------------------------------------------------


def figures(report: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """{section: (caption, PNG bytes)}: "error" (per-layer NMSE of model, classical and quantile band; measured
    vs each applicable bound per layer) and "lipschitz" (upper bounds by method and the attained lower bound
    per layer). Rendered in memory (Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, tuple[str, bytes]] = {}

    def png(fig: Any) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()

    err = report["error"]
    if err.get("available"):
        fig, axes = plt.subplots(1, 2 if err["bounds"] else 1, figsize=(11 if err["bounds"] else 6, 3.8),
                                 squeeze=False)
        ax = axes[0, 0]
        k = np.array(err["layers"])
        mm = err["model"]
        ax.semilogy(k, _floats(mm["mean"]), "o-", color="C0", label="model (mean)")
        ax.fill_between(k, _floats(mm["q05"]), _floats(mm["q95"]), color="C0", alpha=0.2, label="model 5-95 %")
        ax.semilogy(k, _floats(mm["worst"]), ":", color="C0", label="model (worst)")
        for i, (alg, c) in enumerate(err["classical"].items()):
            ax.semilogy(np.arange(len(c["mean"])), _floats(c["mean"]), "s--", color=f"C{i + 1}",
                        label=f"{alg.upper()} (mean)")
        ax.set_xlabel("layer k")
        ax.set_ylabel("NMSE")
        ax.set_title("per-layer NMSE")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        if err["bounds"]:
            ax = axes[0, 1]
            for i, (name, b) in enumerate(err["bounds"].items()):
                meas, bnd = _floats(b["measured_max"]), _floats(b["bound_max"])
                kk = np.arange(len(meas))
                ax.semilogy(kk, np.where(meas > 0, meas, np.nan), "o-", color=f"C{i}", label=f"measured ({name})")
                ax.semilogy(np.arange(len(bnd)), np.where(bnd > 0, bnd, np.nan), "--", color=f"C{i}",
                            label=f"bound {name}")
            ax.set_xlabel("layer k")
            ax.set_ylabel("bound metric (max over the batch)")
            ax.set_title("measured vs applicable bounds")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        caption = "Per-layer NMSE of the model beside the classical algorithm at equal depth" + \
            ("; measured error vs each applicable bound (in the bound's metric)" if err["bounds"] else "")
        out["error"] = (caption, png(fig))
    lip = report["lipschitz"]
    if lip.get("available"):
        fig, ax = plt.subplots(figsize=(6, 3.8))
        k = np.arange(1, lip["num_layers"] + 1)
        for i, (name, vals) in enumerate(lip["upper"].items()):
            f = _floats(vals)
            if np.any(np.isfinite(f)):
                ax.semilogy(k, f, "o--" if name == "sdp" else "--", color=f"C{i + 1}", label=f"upper: {name}")
        low = _floats(lip["lower"])
        ax.semilogy(k, np.where(low > 0, low, np.nan), "k^-", label="lower (attained)" +
                    ("" if lip["finite"] else ", local"))
        ax.set_xlabel("layer k")
        ax.set_ylabel("Lipschitz constant of y -> x_k")
        ax.set_title("Lipschitz bounds" + ("" if lip["finite"] else " (no finite constant)"))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        out["lipschitz"] = ("Lipschitz upper bounds by method and the attained lower bound, per layer", png(fig))
    return out


# ---- Markdown ----------------------------------------------------------------------------------------


def md_cell(s: Any) -> str:
    """A Markdown table cell: ``|`` escaped, newlines as spaces."""
    return str(s).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """The lines of a Markdown table (header padded to the widest row; an empty header is a blank row)."""
    width = max(len(header), max((len(r) for r in rows), default=0))
    header = list(header) + [""] * (width - len(header))
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return lines


def render_md(report: dict[str, Any]) -> str:
    lines = [f"# unfoldkit check: {report['model']['description']}", ""]
    for title, hdr, rows, note in tables(report):
        lines += [f"## {title}", ""]
        lines += md_table(hdr, rows)
        if note:
            lines += ["", note]
        lines.append("")
    return "\n".join(lines)


# ---- HTML --------------------------------------------------------------------------------------------

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 1em}
h1{font-size:1.5em;border-bottom:2px solid #444;padding-bottom:.3em}
h2{font-size:1.15em;margin-top:1.6em;color:#333}
table{border-collapse:collapse;margin:.5em 0;font-size:.88em;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
tr:nth-child(even) td{background:#fafafa}
td.ok{background:#d9f2d9!important;color:#145214;font-weight:bold;white-space:nowrap}
td.bad{background:#f8d0d0!important;color:#7a0d0d;font-weight:bold;white-space:nowrap}
td.nc{background:#eee!important;color:#555;font-weight:bold;white-space:nowrap}
.note{color:#555;font-size:.85em}
.summary{font-size:1.05em;padding:.6em 1em;border-radius:4px;margin:1em 0}
.summary.ok{background:#d9f2d9}.summary.bad{background:#f8d0d0}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555}
"""


def figure_html(caption: str, data: bytes, show_caption: bool = True) -> str:
    """A <figure> with the PNG ``data`` embedded as a data:image/png;base64 URI, ``caption`` as its alt text
    and, with ``show_caption``, printed under it."""
    b64 = base64.b64encode(data).decode("ascii")
    e = html.escape
    shown = f"<figcaption>{e(caption)}</figcaption>" if show_caption else ""
    return f"<figure><img alt=\"{e(caption)}\" src=\"data:image/png;base64,{b64}\">{shown}</figure>"


def html_table(header: list[str], rows: list[list[Any]], state_column: int | None = None,
               classes: dict[str, str] | None = None, escaped: bool = False) -> str:
    """An HTML table; the cells of ``state_column`` get the CSS class ``classes[cell]`` (default STATE_CLASS:
    green, red, grey). Cells are escaped unless ``escaped`` says the caller did it (to put links in them);
    a header without any text is left out."""
    e = (lambda c: str(c)) if escaped else (lambda c: html.escape(str(c)))
    classes = STATE_CLASS if classes is None else classes
    table = ["<table>"]
    if any(header):
        table.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for r in rows:
        cells = []
        for j, cell in enumerate(r):
            cls = classes.get(cell) if j == state_column else None
            cells.append(f"<td class=\"{cls}\">{e(cell)}</td>" if cls else f"<td>{e(cell)}</td>")
        table.append("<tr>" + "".join(cells) + "</tr>")
    table.append("</table>")
    return "".join(table)


def _section_of(title: str) -> str | None:
    if title == "Per-layer error":
        return "error"
    if title.startswith("Lipschitz"):
        return "lipschitz"
    return None


def render_html(report: dict[str, Any], figs: dict[str, tuple[str, bytes]] | None = None) -> str:
    """A self-contained page: inline CSS, figures as data:image/png;base64 URIs, no external reference."""
    figs = dict(figures(report) if figs is None else figs)
    e = html.escape
    code = report["exit_code"]
    c = report["counts"]
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>unfoldkit check: {e(report['model']['description'])}</title>", f"<style>{CSS}</style>",
             "</head><body>", f"<h1>unfoldkit check: {e(report['model']['description'])}</h1>",
             f"<div class=\"summary {'ok' if code == 0 else 'bad'}\">exit code {code}: "
             f"{c['holds']} holds, {c['fails']} fails, {c['not covered']} not covered</div>"]
    for i, (title, hdr, rows, note) in enumerate(tables(report)):
        parts.append(f"<h2>{e(title)}</h2>")
        parts.append(html_table(hdr, rows, state_column=1 if i == 0 else None))
        if note:
            parts.append(f"<p class=\"note\">{e(note)}</p>")
        key = _section_of(title)
        if key in figs:  # each figure right after its table
            parts.append(figure_html(*figs.pop(key)))
    for caption, data in figs.values():  # any figure without a table
        parts.append(figure_html(caption, data))
    parts.append(f"<p class=\"note\">report schema {e(report['schema'])}; every number is in report.json</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ---- files -------------------------------------------------------------------------------------------


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html into ``out_dir`` (created), each atomically, and the
    stress counterexample (if any) as the .npz the verdict names. Returns {"json", "md", "html"[, 
    "counterexample"]: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    sr = report.get("stress", {})
    if sr.get("counterexample") and sr.get("counterexample_file"):
        from unfoldkit.proofs_check.stress import save_counterexample

        target = out / sr["counterexample_file"]
        written = save_counterexample(target.parent, sr["counterexample"], sr.get("call", ""))
        if written != target:
            written.replace(target)
        paths["counterexample"] = target
    paths["json"] = write_json(out / "report.json", report)
    paths["md"] = write_text(out / "report.md", render_md(report))
    paths["html"] = write_text(out / "report.html", render_html(report))
    return paths


def verdict_lines(report: dict[str, Any]) -> list[str]:
    """The verdict lines as shown (check, state, detail), for tests and the CLI summary."""
    return [f"{r['check']}: {r['state']}: {r['detail']}" for r in report["verdicts"]]


__all__ = ["CSS", "figure_html", "figures", "html_table", "md_cell", "md_table", "render_html", "render_md", "tables",
           "verdict_lines", "write_report"]
