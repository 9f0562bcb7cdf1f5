"""A sweep's report: its table (terminal, record, HTML), its heatmap, the schema checks on
``record["sweep"]``, and the page with the heatmap rendered in headless Chromium."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from equivtest.cli import app
from equivtest.errors import EquivtestError
from equivtest.maps import RUNGS
from equivtest.report.html import render, write_html
from equivtest.report.sweep import (FIRST_FAILURE_MARK, RUNG_LETTERS, SweepSchemaError, best_matches, rung_letters,
                                    short_layer_names, sweep_heatmap, sweep_table, validate_sweep, worse_error)
from equivtest.report.terminal import print_sweep
from tests import _sweeps
from tests._sweeps import all_pairs_3x4, cell, diagonal_6x6, diagonal_square, direction, sweep

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def column(table, name: str) -> list:
    return [row[table.columns.index(name)] for row in table.rows]


def cell_texts(fig) -> dict[tuple[int, int], str]:
    """(row, column) -> the letter written in that cell of the heatmap."""
    ax = fig.axes[0]
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}


def cell_patches(fig) -> dict[tuple[int, int], object]:
    """(row, column) -> the filled square of that cell."""
    ax = fig.axes[0]
    return {(round(p.get_y() + 0.5), round(p.get_x() + 0.5)): p for p in ax.patches if p.get_fill()}


def outlines(fig) -> list[tuple[int, int]]:
    return [(round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in fig.axes[0].patches if not p.get_fill()]


# ----------------------------------------------------------------------------- letters and names


def test_every_rung_of_the_ladder_has_its_own_letter():
    assert set(RUNG_LETTERS) == set(RUNGS)
    assert len(set(RUNG_LETTERS.values())) == len(RUNG_LETTERS)


def test_a_rung_of_the_users_own_gets_a_free_letter():
    letters = rung_letters(["identity", "affine", "ica", "aaa", "xform"])
    assert letters["identity"] == "I" and letters["affine"] == "A"
    assert letters["ica"] == "C"  # I is the identity's
    assert letters["aaa"] == "1"  # A is taken and it has no other letter
    assert letters["xform"] == "F"  # X would read as "not equivalent"
    assert len(set(letters.values())) == 5


def test_layer_names_lose_what_they_share_and_keep_their_ends():
    short, pattern = short_layer_names([f"bert.encoder.layer.{k}.output.dense" for k in range(12)], width=14)
    assert short == [str(k) for k in range(12)] and pattern == "bert.encoder.layer.*.output.dense"
    short, pattern = short_layer_names(["embeddings", "encoder.layer.0.attention.output", "pooler"], width=14)
    assert pattern == "" and short[0] == "embeddings" and short[2] == "pooler"
    assert short[1] == "e.l.0.a.output"  # words cut to a letter, the layer's number kept
    short, _ = short_layer_names(["conv1", "layer2.0.downsample.0", "encoder.layer.11.attention.output"], width=14)
    assert short == ["conv1", "l2.0.d.0", "e.l.11….output"]  # the middle gives way last
    assert short_layer_names(["fc1"], width=14) == (["fc1"], "")


def test_names_that_clash_once_shortened_get_their_index():
    short, _ = short_layer_names(["block_one_middle_end", "block_two_middle_end"], width=8)
    assert short[0] != short[1] and short[0].startswith("0:") and short[1].startswith("1:")


# ----------------------------------------------------------------------------- the table


def test_a_diagonal_sweep_has_one_row_per_layer_and_marks_its_first_failure():
    s = diagonal_6x6()
    table = sweep_table(s)
    assert column(table, "layer") == s["layers_a"]  # same names on both sides: one layer column
    verdicts = column(table, "verdict")
    assert [FIRST_FAILURE_MARK in v for v in verdicts] == [False, False, False, False, True, False]
    assert verdicts[4].startswith("equivalent") and verdicts[5] == "not equivalent"
    rungs = [r or "failed" for r in _sweeps.DIAGONAL_RUNGS]
    assert column(table, "rung a->b") == rungs and column(table, "rung b->a") == rungs
    assert column(table, "rel. error") == _sweeps.DIAGONAL_ERRORS  # the worse direction (a->b, twice b->a's)
    assert column(table, "CKA") == [c["cka"] for c in s["cells"]]
    assert table.title == "Sweep bert vs. bert-int8: layer by layer"
    assert table.notes.startswith("first failure below affine: encoder.layer.4 (equivalent only up to nonlinear")
    assert "a = bert, b = bert-int8" in table.notes


def test_a_diagonal_of_differently_named_layers_has_both_columns_and_a_missing_cell_says_so():
    a, b = ["fc1", "fc2", "fc3"], ["dense1", "dense2", "dense3"]
    cells = [cell(k, k, a, b, direction("identity"), direction("identity")) for k in (0, 2)]
    table = sweep_table(sweep("diagonal", a, b, cells))
    assert column(table, "layer (a)") == a and column(table, "layer (b)") == ["dense1", None, "dense3"]
    assert column(table, "verdict") == ["equivalent", "not run", "equivalent"]
    assert table.notes.startswith("no layer pair falls below affine.")


def test_an_all_pairs_sweep_shows_the_best_match_of_each_layer_of_a():
    s = all_pairs_3x4()
    table = sweep_table(s)
    assert column(table, "layer (a)") == ["conv1", "layer1", "layer2"]
    # row 1: affine both ways at the lower error beats affine at a higher one, and one-way identity
    assert column(table, "best match (b)") == ["stem", "block2", "block2"]
    assert column(table, "verdict") == ["equivalent", "equivalent", "not equivalent"]
    assert column(table, "rung a->b") == ["identity", "affine", "failed"]
    assert column(table, "rel. error") == [1e-14, 2e-4, 0.3]
    assert {i: (c["i"], c["j"]) for i, c in best_matches(s).items()} == {0: (0, 0), 1: (1, 2), 2: (2, 2)}
    assert "first failure below affine: layer1 / stem" in table.notes and "11 cells of 3 x 4" in table.notes


def test_undecidable_and_null_cells_show_dashes_not_numbers():
    layers = ["l0", "l1"]
    unknown = direction(status="undecidable", rel_error=None, stitched=None, null_ratio=None)
    cells = [cell(0, 0, layers, layers, direction("affine", rel_error=float("nan")), direction("affine", rel_error=2e-4)),
             cell(1, 1, layers, layers, unknown, unknown, cka=None)]
    s = sweep("diagonal", layers, layers, cells)
    table = sweep_table(s)
    assert column(table, "verdict") == ["equivalent", "undecidable"]
    assert column(table, "rung a->b") == ["affine", "undecidable"]
    assert column(table, "rel. error") == [2e-4, None]  # NaN is no error: the other direction's counts
    assert worse_error(cells[1]) is None and column(table, "CKA")[1] is None
    page = table.to_html()
    assert page.count("<td>—</td>") == 4  # rel. error, stitched, null ratio and CKA of the undecidable layer
    fig = sweep_heatmap(s)
    assert cell_texts(fig) == {(0, 0): "A", (1, 1): "?"}
    assert cell_patches(fig)[1, 1].get_facecolor()[:3] == pytest.approx((0.8, 0.8, 0.8))  # grey: no error


def test_the_terminal_prints_every_layer_and_never_breaks_a_number():
    for width in (120, 80):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        print_sweep(diagonal_6x6(), console)
        out = console.file.getvalue()
        assert max(map(len, out.splitlines())) <= width  # wrapped, not cropped
        for number in ("1e-12", "1e-09", "1e-05", "0.0003", "0.0200", "0.4000", "0.9997"):
            assert number in out, (width, number)
        first_column = "".join(line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│"))
        assert first_column == "".join(f"encoder.layer.{k}" for k in range(6))  # perhaps folded, never cut
        assert "first" in out and "◀" in out


@pytest.mark.parametrize("width", [80, 100, 120])
def test_a_table_of_long_layer_names_fits_the_terminal_with_every_number_whole(width):
    names = ["embeddings", *[f"encoder.layer.{k}.attention.output" for k in range(10)], "pooler"]
    table = sweep_table(diagonal_square(12, names))
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table.to_rich())
    out = console.file.getvalue()
    assert max(map(len, out.splitlines())) <= width
    numbers = {c for row in table.rows for c in row[5:] if c is not None}
    from equivtest.report.tables import _cell

    assert all(_cell(n) in out for n in numbers)
    first_column = "".join(line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│"))
    assert first_column == "".join(names)


# ----------------------------------------------------------------------------- the heatmap


def test_the_heatmap_writes_each_rung_and_outlines_the_first_failure():
    s = diagonal_6x6()
    fig = sweep_heatmap(s)
    assert cell_texts(fig) == {(0, 0): "I", (1, 1): "I", (2, 2): "O", (3, 3): "A", (4, 4): "N", (5, 5): "x"}
    assert outlines(fig) == [(4, 4)]
    assert set(cell_patches(fig)) == {(k, k) for k in range(6)}  # off-diagonal cells were not run: blank
    bar = fig.axes[1]
    low, high = min(_sweeps.DIAGONAL_ERRORS), max(_sweeps.DIAGONAL_ERRORS)
    assert bar.get_yscale() == "log" and bar.get_ylim() == pytest.approx((low, high))
    ax = fig.axes[0]
    assert "bert (a)" in ax.get_ylabel() and "bert-int8 (b)" in ax.get_xlabel() and "encoder.layer.*" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(k) for k in range(6)]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"identity", "nonlinear", "not equivalent", "undecidable", "first failure (below affine)"} <= set(labels)


def test_the_colour_follows_the_error():
    fig = sweep_heatmap(diagonal_6x6())
    patches = cell_patches(fig)
    # viridis: dark for the smallest error, bright for the largest; the letters stay legible on both
    brightness = [sum(patches[k, k].get_facecolor()[:3]) for k in range(6)]
    assert brightness == sorted(brightness)
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in fig.axes[0].texts}
    assert texts[0, 0].get_color() == "white" and texts[5, 5].get_color() == "black"


def test_the_heatmap_of_all_pairs_marks_one_way_cells_and_leaves_missing_ones_blank():
    fig = sweep_heatmap(all_pairs_3x4())
    texts = cell_texts(fig)
    assert texts[0, 0] == "I" and texts[1, 0] == "I→" and texts[1, 3] == "N←"  # only a->b / only b->a passes
    assert texts[0, 2] == "x" and texts[2, 0] == "?"
    assert (2, 3) not in texts and (2, 3) not in cell_patches(fig)
    assert outlines(fig) == [(1, 0)]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["stem", "block1", "block2", "head"]


@pytest.mark.parametrize("n", [6, 24])
def test_the_heatmap_is_readable_from_6_to_24_layers(n):
    names = ["embeddings", *[f"encoder.layer.{k}.attention.output" for k in range(n - 2)], "pooler"]
    for layers in (None, names):
        fig = sweep_heatmap(diagonal_square(n, layers))
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        ax = fig.axes[0]
        for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
            assert len(ticks) == n and all(t.get_fontsize() >= 7 for t in ticks)
            boxes = [t.get_window_extent(renderer) for t in ticks]
            assert not any(b1.overlaps(b2) for b1, b2 in zip(boxes, boxes[1:])), "tick labels overlap"
        # every letter fits inside its cell
        cell_px = ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]
        assert all(t.get_window_extent(renderer).width < cell_px for t in ax.texts)
        assert all(t.get_fontsize() >= 7 for t in ax.texts)
        width_px = fig.get_size_inches()[0] * 90  # the HTML page draws at 90 dpi, 1150 px wide at most
        assert width_px <= 1150


# ----------------------------------------------------------------------------- schema errors


def _cells(s: dict) -> list:
    return s["cells"]


BAD = [
    (lambda s: s.pop("cells"), "sweep lacks the key 'cells'"),
    (lambda s: s.pop("first_failure"), "sweep lacks the key 'first_failure'"),
    (lambda s: _cells(s)[2].pop("kind"), "sweep['cells'][2] lacks the key 'kind'"),
    (lambda s: _cells(s)[0]["directions"]["b->a"].pop("rel_error"),
     "sweep['cells'][0]['directions']['b->a'] lacks the key 'rel_error'"),
    (lambda s: _cells(s)[1]["directions"].pop("a->b"), "sweep['cells'][1]['directions'] lacks the key 'a->b'"),
    (lambda s: s.update(schema=2), "sweep['schema'] is 2; this equivtest draws sweeps of schema 1"),
    (lambda s: s.update(mode="some"), "sweep['mode'] is 'some', not one of ['all', 'diagonal']"),
    (lambda s: s.update(names=["only"]), "sweep['names'] is ['only'], not the two networks' labels"),
    (lambda s: s.update(layers_a=[]), "sweep['layers_a'] is [], not a non-empty list of layer names"),
    (lambda s: s.update(layers_b=["x", "x"]), "sweep['layers_b'] names ['x'] more than once"),
    (lambda s: s.update(up_to="rotation"), "sweep['up_to'] is 'rotation', not null or a rung"),
    (lambda s: _cells(s)[3].update(kind="maybe"), "sweep['cells'][3]['kind'] is 'maybe', not one of"),
    (lambda s: _cells(s)[3].update(i=6), "sweep['cells'][3]['i'] is 6, not an index into layers_a (0 to 5)"),
    (lambda s: _cells(s)[3].update(j=True), "sweep['cells'][3]['j'] is True, not an index into layers_b"),
    (lambda s: _cells(s)[1].update(layer_a="decoder.1"),
     "sweep['cells'][1]['layer_a'] is 'decoder.1', but layers_a[1] is 'encoder.layer.1'"),
    (lambda s: _cells(s)[1].update(j=2, layer_b="encoder.layer.2"), "is cell (1, 2) of a diagonal sweep, where i == j"),
    (lambda s: _cells(s).append(copy.deepcopy(_cells(s)[0])), "sweep['cells'][6] is cell (0, 0) a second time"),
    (lambda s: _cells(s)[0]["directions"]["a->b"].update(rung="rotation"),
     "sweep['cells'][0]['directions']['a->b']['rung'] is 'rotation', not null or a rung"),
    (lambda s: _cells(s)[0]["directions"]["a->b"].update(rung=None),
     "sweep['cells'][0]['directions']['a->b']['rung'] is null although the direction passed"),
    (lambda s: _cells(s)[0]["directions"]["a->b"].update(status="ok"),
     "sweep['cells'][0]['directions']['a->b']['status'] is 'ok', not one of"),
    (lambda s: _cells(s)[0]["directions"]["a->b"].update(rel_error="0.1"),
     "sweep['cells'][0]['directions']['a->b']['rel_error'] is '0.1', not a number or null"),
    (lambda s: _cells(s)[0].update(up_to=None), "sweep['cells'][0]['up_to'] is null for an equivalent cell"),
    (lambda s: _cells(s)[5].update(kind="b_to_a"), "sweep['cells'][5]['kind'] is 'b_to_a', but its b->a direction"),
    (lambda s: _cells(s)[0].update(cka="high"), "sweep['cells'][0]['cka'] is 'high', not a number or null"),
    (lambda s: s["first_failure"].update(i=5, j=5), "names layers 'encoder.layer.4' / 'encoder.layer.4', but its cell"),
    (lambda s: s.update(cells=s["cells"][:4]), "sweep['first_failure'] names cell (4, 4), which is not among the cells"),
]


@pytest.mark.parametrize("damage, message", BAD, ids=[m[:40] for _, m in BAD])
def test_a_sweep_off_its_schema_is_refused_naming_the_key(damage, message):
    s = diagonal_6x6()
    damage(s)
    for reader in (validate_sweep, sweep_table, sweep_heatmap):
        with pytest.raises(SweepSchemaError) as info:
            reader(s)
        assert message in str(info.value), str(info.value)
        assert "rerun the sweep" in str(info.value)
    assert issubclass(SweepSchemaError, EquivtestError)


def test_a_sweep_that_is_not_an_object_is_refused():
    with pytest.raises(SweepSchemaError, match="sweep is list, not an object"):
        validate_sweep([])


def test_the_synthetic_sweeps_follow_the_schema():
    for s in (diagonal_6x6(), all_pairs_3x4(), diagonal_square(5)):
        assert validate_sweep(s) is s


# ----------------------------------------------------------------------------- the HTML page


def bare_record(sweep_dict: dict, names=("bert", "bert-int8")) -> dict:
    """A sweep's run record with no criteria and no plots of one fit."""
    return {"schema": "equivtest.run", "schema_version": 1, "created": "2026-01-01T00:00:00+00:00", "suite": None,
            "pair": {"name": "minilm", "names": list(names)}, "result": {"pair": "minilm", "passed": True, "info": {},
                                                                     "criteria": []},
            "artefacts": {}, "tables": [sweep_table(sweep_dict).to_dict()], "sweep": sweep_dict}


def write_record(folder: Path, record: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "record.json").write_text(json.dumps(record))
    return folder


@pytest.fixture(scope="module")
def fitted_run_with_sweep(tmp_path_factory):
    """A real run folder (one fit: plots and criteria) whose record also holds a sweep."""
    from equivtest import FitConfig, GaussianNeighbourhood, GridPoints, NetworkPair, Sampler, fit_pair
    from equivtest.record import write_run
    from tests._nets import tanh_mlp

    sampler = Sampler(GridPoints(-1.0, 1.0, 128), GaussianNeighbourhood(64, 0.05), seed=0)
    fitted = fit_pair(NetworkPair(tanh_mlp(0), tanh_mlp(1), "act2", "act2", names=("net<0>", "net&1")), sampler,
                      FitConfig())
    result = fitted.evaluate(np.linspace(-0.9, 0.9, 100)[:, None], thresholds={"activation_mse": 1e-3})
    record_path = write_run(fitted, result, tmp_path_factory.mktemp("sweep-report"), suite="demo")
    record = json.loads(record_path.read_text())
    s = diagonal_6x6()
    s["names"] = ["net<0>", "net&1"]
    record["sweep"] = s
    record["tables"].append(sweep_table(s).to_dict())
    record_path.write_text(json.dumps(record))
    return write_html(record_path.parent).parent


def test_the_page_shows_the_heatmap_and_the_table_beside_the_fits_plots(fitted_run_with_sweep):
    page = (fitted_run_with_sweep / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 7  # the six plots of the fit and the heatmap
    assert page.count("id='sweep-heatmap'") == 1 and "alt='Heatmap of the sweep" in page
    assert page.count("Sweep net&lt;0&gt; vs. net&amp;1: layer by layer") == 1  # the table once, names escaped
    assert "<0>" not in page and "net&1" not in page
    assert page.index("id='sweep'") < page.index("<h2>Criteria</h2>") < page.index("<h2>Plots</h2>")
    assert all(f"<td>encoder.layer.{k}</td>" in page for k in range(6))
    assert "first failure below affine: encoder.layer.4" in page


def test_a_sweep_record_without_plots_or_criteria_renders(tmp_path):
    folder = write_record(tmp_path / "run", bare_record(all_pairs_3x4(), names=("resnet", "resnet-pruned")))
    page = render(folder)
    assert page.count("data:image/png;base64,") == 1 and "id='sweep-heatmap'" in page
    assert "<h2>Criteria</h2>" not in page and "<h2>Plots</h2>" not in page
    assert "<b>first failure below affine: layer1 / stem (b-&gt;a fails at every rung)</b>" in page
    assert "best match (b)" in page


def test_a_damaged_sweep_in_a_record_is_a_clear_error_of_equivtest_report(tmp_path):
    record = bare_record(diagonal_6x6())
    del record["sweep"]["cells"][2]["directions"]["a->b"]["stitched"]
    folder = write_record(tmp_path / "run", record)
    result = CliRunner().invoke(app, ["report", str(folder)])
    out = " ".join(result.output.split())
    assert result.exit_code == 2, out
    assert "record.json" in out and "sweep['cells'][2]['directions']['a->b'] lacks the key 'stitched'" in out
    assert not (folder / "report.html").exists()


# ----------------------------------------------------------------------------- headless Chromium

PROBE = """<script>
window.addEventListener('load', () => {
  const fig = document.getElementById('sweep-heatmap');
  const imgs = [...document.images];
  document.body.setAttribute('data-heatmap', fig ? `${fig.complete}:${fig.naturalWidth}x${fig.naturalHeight}` : 'none');
  document.body.setAttribute('data-broken', imgs.filter(i => !i.complete || i.naturalWidth === 0).length);
});
</script></body>"""


def chromium(*args, profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian packages chromium, chromium-driver)")
def test_headless_chromium_finds_the_heatmap_and_a_screenshot_is_kept(fitted_run_with_sweep, tmp_path):
    page = fitted_run_with_sweep / "report.html"
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), profile=tmp_path / "profile").stdout
    found = re.search(r'data-heatmap="true:(\d+)x(\d+)"', dom)
    assert found, dom[-800:]
    assert int(found[1]) > 0 and int(found[2]) > 0 and 'data-broken="0"' in dom

    shot = tmp_path / "sweep-report.png"
    chromium("--window-size=1200,1500", f"--screenshot={shot}", page.as_uri(), profile=tmp_path / "profile")
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1500, 1200)
    assert pixels[..., :3].std() > 0.05  # not a blank page
    artefacts = os.environ.get("EQUIVTEST_ARTEFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shot = Path(shutil.copy(shot, Path(artefacts) / shot.name))
    print(f"screenshot of the sweep report: {shot}")


def test_non_finite_figures_written_as_strings_are_read_as_numbers():
    """A sweep's to_dict writes infinity and NaN as "inf" / "nan" (as a verdict's does): the
    table reads them as numbers (an exact identity map's null ratio is infinite, a NaN CKA is
    blank), the heatmap colours only finite errors, and other strings are still refused."""
    from equivtest.report.sweep import SweepSchemaError, sweep_table, validate_sweep, worse_error

    data = copy.deepcopy(diagonal_6x6())
    first = data["cells"][0]
    for d in ("a->b", "b->a"):
        first["directions"][d]["null_ratio"] = "inf"
    first["directions"]["a->b"]["rel_error"] = "inf"
    first["cka"] = "nan"
    validate_sweep(data)
    table = sweep_table(data)
    assert column(table, "null ratio")[0] == float("inf")
    assert column(table, "CKA")[0] is None
    assert worse_error(first) == first["directions"]["b->a"]["rel_error"]  # the infinite one is not coloured
    first["cka"] = "many"
    with pytest.raises(SweepSchemaError, match="cka"):
        validate_sweep(data)
