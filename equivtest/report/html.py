"""A self-contained HTML page for one run: criteria and the plots that explain a fit.

Rendered from a run folder (``record.json`` and ``plots.npz``) alone; matplotlib
figures are embedded as base64 PNG, so the page needs no other file.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes
from .plotdata import load_plot_arrays


def _figure_png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _axis(inputs: np.ndarray) -> tuple[np.ndarray, str]:
    """Plot against the input where it is 1-d, else against the sample index."""
    if inputs.ndim == 2 and inputs.shape[1] == 1:
        return inputs[:, 0], "input x"
    return np.arange(len(inputs), dtype=float), "sample index"


def _lines(ax, x, values, style="-", label=None, **kw):
    order = np.argsort(x, kind="stable")
    for j in range(values.shape[1]):
        ax.plot(x[order], values[order, j], style, lw=1, label=label if j == 0 else None, **kw)


def _figures(d: dict, names: tuple[str, str]) -> list[tuple[str, str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    x, xlabel = _axis(d["sample_inputs"])

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, side, name in zip(axes, "ab", names):
        nb_in = d["neighbourhood_inputs"]
        nb = d[f"neighbourhoods_{side}"]
        if nb_in.shape[-1] == 1 and xlabel == "input x":
            ax.scatter(np.repeat(nb_in[..., 0].ravel(), 1), nb.reshape(-1, nb.shape[-1])[:, 0], s=2, alpha=0.25,
                       color="tab:gray", label="neighbourhood (first neuron)")
        _lines(ax, x, d[f"samples_{side}"], label="samples")
        ax.set(title=f"{name}: sample activations", xlabel=xlabel, ylabel="activation")
        ax.legend(fontsize=7, loc="best")
    figs.append(("activations", "Sample and neighbourhood activations",
                 "Each line is one neuron of the chosen layer over the samples; grey dots are neighbourhood "
                 "points of a few samples (first neuron).", _figure_png(fig)))

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, side, name in zip(axes, "ab", names):
        _lines(ax, x, d[f"coordinates_{side}"][:, 1:])
        ax.set(title=f"{name}: diffusion coordinates (constant one left out)", xlabel=xlabel, ylabel="psi")
    figs.append(("dmaps", "Diffusion coordinates of each network", "Non-constant eigenvectors over the samples.",
                 _figure_png(fig)))

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, (src, tgt) in zip(axes, (("a", "b"), ("b", "a"))):
        _lines(ax, x, d[f"coordinates_{tgt}"][:, 1:], "-", label=f"{names['ab'.index(tgt)]} (true)")
        _lines(ax, x, d[f"aligned_{src}_to_{tgt}"][:, 1:], "--", label=f"{names['ab'.index(src)]} aligned")
        ax.set(title=f"Procrustes alignment {src.upper()} -> {tgt.upper()}", xlabel=xlabel, ylabel="psi")
        ax.legend(fontsize=7)
    figs.append(("aligned", "Aligned coordinates after Procrustes",
                 "Solid: the target network's coordinates; dashed: the source's, aligned into them.", _figure_png(fig)))

    if "test_inputs" in d:
        tx, txlabel = _axis(d["test_inputs"])
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        for ax, (src, tgt) in zip(axes, (("a", "b"), ("b", "a"))):
            ex, exlabel = _axis(d["test_rows"]) if "test_rows" in d else (tx, txlabel)
            err = ((d[f"predicted_{src}_to_{tgt}"] - d[f"test_activations_{tgt}"]) ** 2).mean(axis=1)
            order = np.argsort(ex, kind="stable")
            ax.semilogy(ex[order], np.maximum(err[order], 1e-300), lw=1)
            ax.set(title=f"squared error of transformed activations, {src.upper()} -> {tgt.upper()}",
                   xlabel=exlabel if "test_rows" not in d else "row (input x slice)", ylabel="mean squared error")
        figs.append(("activation-error", "Transformed vs. true activations on the test inputs",
                     "Mean squared error per test input, log scale.", _figure_png(fig)))

        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        for ax, (src, tgt) in zip(axes, (("a", "b"), ("b", "a"))):
            key = f"stitched_{src}_to_{tgt}"
            if key not in d:
                ax.set_visible(False)
                continue
            _lines(ax, tx, d[f"test_outputs_{tgt}"][:, :1], "-", label=f"{names['ab'.index(tgt)]} (target)")
            _lines(ax, tx, d[key][:, :1], "--", label="stitched")
            ax.set(title=f"outputs, stitched {src.upper()} -> {tgt.upper()}", xlabel=txlabel, ylabel="output (first)")
            ax.legend(fontsize=7)
        figs.append(("outputs", "Stitched vs. target network outputs",
                     "The stitched network (source up to its layer, transformation, target after it) against the "
                     "target network on the test inputs.", _figure_png(fig)))

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for side, name in zip("ab", names):
        ev = d[f"eigenvalues_{side}"]
        ax.semilogy(np.arange(len(ev)), np.maximum(1 - ev, 1e-16), "o-", label=name)
    ax.set(title="eigenvalue decay", xlabel="eigenvector index", ylabel="1 - eigenvalue")
    ax.legend(fontsize=7)
    figs.append(("eigenvalues", "Eigenvalue decay", "1 - lambda of the diffusion-map eigenpairs (0 for the constant one).",
                 _figure_png(fig)))
    return figs


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px}
th{background:#f3f3f3}.pass{color:#176f2c}.FAIL{color:#b00020;font-weight:bold}.info{color:#777}
figure{margin:1.5em 0}figcaption{font-size:13px;color:#555}img{max-width:100%}code{background:#f5f5f5}
"""


def _sweep_section(sweep: dict) -> tuple[str, dict]:
    """The sweep's heatmap (``img#sweep-heatmap``) and table; and the table's dict, so that a
    copy of it among the record's tables is not shown twice."""
    from .sweep import first_failure_text, sweep_heatmap, sweep_table

    table = sweep_table(sweep)  # checks the sweep against its schema first
    a, b = sweep["names"]
    finding = first_failure_text(sweep)
    alt = (f"Heatmap of the sweep, layer of {a} (rows) by layer of {b} (columns): colour is the held-out relative "
           f"error, the letter the rung; {finding}")
    caption = ("Colour: held-out relative error (1 - R^2) of the worse of the two directions, log scale. Letter: the "
               "most rigid rung that passed (legend beneath the grid); an arrow where only one direction passed, x "
               "for not equivalent, ? for undecidable; blank: not run. Outlined in red: the first layer pair whose "
               f"verdict falls below {sweep['up_to'] or 'the ladder'}.")
    figure = ("<figure id='sweep'><h3>Held-out error and rung of each layer pair</h3>"
              f"<img id='sweep-heatmap' alt='{html.escape(alt)}' src='data:image/png;base64,"
              f"{_figure_png(sweep_heatmap(sweep))}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    return f"<h2>Sweep</h2>{figure}{table.to_html()}", table.to_dict()


def render(run: Path) -> str:
    from ..record import RecordError, load_record
    from .sweep import SweepSchemaError

    run = Path(run)
    record = load_record(run / "record.json")
    sweep, sweep_html, sweep_table = record.get("sweep"), "", None
    if sweep is not None:
        try:
            sweep_html, sweep_table = _sweep_section(sweep)
        except SweepSchemaError as exc:
            raise RecordError(f"{run / 'record.json'}: {exc}") from None
    names = tuple(record["pair"].get("names", ["a", "b"]))
    rows = []
    for c in record["result"]["criteria"]:
        status = {True: "pass", False: "FAIL", None: "info"}[c["passed"]]
        relation = ">=" if c["higher_is_better"] else "<="
        threshold = "—" if c["threshold"] is None else f"{relation} {c['threshold']:.3g}"
        rows.append(f"<tr><td>{html.escape(c['name'])}</td><td>{html.escape(c['direction'])}</td>"
                    f"<td>{c['value']:.4g}</td><td>{threshold}</td><td class='{status}'>{status}</td>"
                    f"<td>{html.escape(c.get('detail', ''))}</td></tr>")
    figures = _plots(run, record, names) if _has_plots(record) else ""
    from .tables import ResultTable

    tables = "".join(ResultTable.from_dict(t).to_html() for t in record.get("tables", []) if t != sweep_table)
    tables = f"<h2>Tables</h2>{tables}" if tables else ""
    criteria = (f"<h2>Criteria</h2><table><tr><th>criterion</th><th>direction</th><th>value</th>"
                f"<th>threshold</th><th>status</th><th>detail</th></tr>{''.join(rows)}</table>")
    verdict = "all asserted criteria met" if record["result"]["passed"] else "some criteria failed"
    if sweep is not None:  # the sweep's finding is the headline; beside the criteria' verdict if it has any
        from .sweep import first_failure_text

        finding = html.escape(first_failure_text(sweep))
        verdict, criteria = (f"{verdict} · {finding}", criteria) if rows else (finding, "")
    meta = html.escape(json.dumps({k: record.get(k) for k in ("sampler", "config", "fit", "versions")}, indent=1))
    title = html.escape(f"equivtest: {record['pair']['name']} ({names[0]} vs. {names[1]})")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><p>{html.escape(record['created'])} · suite {html.escape(str(record.get('suite')))} · "
        f"<b>{verdict}</b></p>{sweep_html}{criteria}{_verdict(record)}{tables}"
        f"{f'<h2>Plots</h2>{figures}' if figures else ''}<h2>Run</h2><pre>{meta}</pre></body></html>"
    )


def _has_plots(record: dict) -> bool:
    """A fit's run has plots; a verdict's own run (written by the pytest plugin) has none."""
    return "plots" in record.get("artefacts", {}) or "transformation" in record.get("artefacts", {})


def _plots(run: Path, record: dict, names) -> str:
    from ..record import RecordError, artefact_path

    plots = artefact_path(run, record, "plots", "plots.npz", must_exist=True)
    arrays = load_plot_arrays(plots)
    try:
        drawn = _figures(arrays, names)
    except (KeyError, IndexError, ValueError) as exc:  # arrays missing, or of shapes that do not fit together
        raise RecordError(
            f"{plots} does not hold the arrays the report draws ({exc!r}); rerun the suite for a new run folder"
        ) from None
    return "".join(
        f"<figure id='{key}'><h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' "
        f"src='data:image/png;base64,{png}'><figcaption>{html.escape(caption)}</figcaption></figure>"
        for key, title, caption, png in drawn
    )


def _verdict(record: dict) -> str:
    """The ladder's verdict and its diagnostics' hints, where the run has one (``result.info``)."""
    info = record["result"].get("info")
    text = info.get("verdict") if isinstance(info, dict) else None
    if not isinstance(text, str):
        return ""
    ladder = info.get("ladder")
    diagnostics = ladder.get("diagnostics") if isinstance(ladder, dict) else None
    hints = diagnostics.get("hints") if isinstance(diagnostics, dict) else None
    items = "".join(f"<li>{html.escape(h)}</li>" for h in hints if isinstance(h, str)) if isinstance(hints, list) else ""
    return (f"<h2>Verdict</h2><p id='verdict'><b>{html.escape(text)}</b></p>"
            + (f"<p>What the data allows, and the fix where it does not:</p><ul>{items}</ul>" if items else ""))


def write_html(run: Path) -> Path:
    """Render ``run/report.html`` (atomically) and return its path."""
    return atomic_write_bytes(Path(run) / "report.html", render(run).encode())
