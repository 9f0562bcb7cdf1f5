"""The ``equivtest`` command: list and run the suites, print their criteria."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from . import suites as installed_suites

app = typer.Typer(help="Test whether two neural networks are equivalent.", no_args_is_help=True, add_completion=False)
console = Console(log_path=False)
if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
    console = Console(width=120, log_path=False)


@app.command("list")
def list_suites() -> None:
    """List the suites that `equivtest run` knows (installed packages' `equivtest.suites` entry points), and how to run your own pair."""
    found = installed_suites.discover()
    if not found:
        console.print(f"no suites are installed; {escape(installed_suites.INSTALL_HINT)}")
        return
    for name, suite in found.items():
        console.print(f"[bold]{escape(name)}[/]  {escape(suite.title)}")
    console.print("\nyour own pair: declare it with @equivtest.pair(data=..., test_inputs=...) and run "
                  "`equivtest run path/to/file.py::pair_name` (or `module:pair_name`)", markup=False)


@app.command()
def run(
    suite: str = typer.Argument(..., help="Suite name (see `equivtest list`), or your own pair: FILE.py::NAME or module:NAME."),
    report_dir: Path = typer.Option(Path("reports"), help="Where the run's record.json and transformation.npz go."),
    no_record: bool = typer.Option(False, "--no-record", help="Print the criteria only; write no files."),
    samples: Optional[int] = typer.Option(None, help="Number of samples (default: the suite's)."),
    neighbourhood: Optional[int] = typer.Option(None, help="Neighbourhood size (default: the suite's)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the sampler (default: the suite's)."),
    null: int = typer.Option(0, help="Null calibration: refit on this many random re-pairings of the samples."),
    profile: str = typer.Option("ci", help="Suites with several fits: `ci` (small, minutes) or `full` (the thesis's sizes)."),
) -> None:
    """Rerun a suite, or fit your own pair: fit the transformation, assert its criteria, write a JSON record."""
    from .userpairs import is_pair_target

    if is_pair_target(suite):
        return _run_user_pair(suite, None if no_record else report_dir, null)
    try:
        entry = installed_suites.get(suite)
    except installed_suites.SuiteNotFound as exc:
        console.print(f"[red]{escape(exc.args[0])}[/]")
        raise typer.Exit(2)
    overrides = {k: v for k, v in (("n_samples", samples), ("neighbourhood_size", neighbourhood), ("seed", seed)) if v is not None}
    from .runner import run_suite

    with console.status(f"[bold]{escape(suite)}[/]: starting") as status:
        experiment = entry.load()
        stage = _stage(status, suite)
        try:
            outcome = run_suite(
                experiment, profile=profile, report_dir=None if no_record else report_dir, stage=stage,
                sampler_kwargs=overrides, null_shuffles=null,
            )
        except ValueError as exc:
            console.print(f"[red]{escape(str(exc))}[/]")
            raise typer.Exit(2)
    _report(outcome, entry.title)


@app.command("sweep")
def sweep_command(
    target: str = typer.Argument(..., help="Your pair: FILE.py::NAME or module:NAME, declared with @equivtest.pair(ladder_inputs=...)."),
    layers_a: Optional[str] = typer.Option(None, "--layers-a", help="Comma-separated layers of A (default: every block)."),
    layers_b: Optional[str] = typer.Option(None, "--layers-b", help="Comma-separated layers of B (default: every block)."),
    mode: str = typer.Option("auto", help="all (every layer pair), diagonal (same layer names), auto (diagonal when the layer lists agree)."),
    up_to: str = typer.Option("affine", "--up-to", help="Name the first layer not equivalent up to this rung."),
    rungs: Optional[str] = typer.Option(None, help="Comma-separated rungs, rigid first (default: identity..affine)."),
    device: Optional[str] = typer.Option(None, help="A torch device (cpu, cuda, cuda:1) for the rigid and affine maps' fits; default numpy on the CPU."),
    engine: Optional[str] = typer.Option(None, help="Where the cells run: a Dask scheduler address (tcp://host:port) or local:N (a local cluster of N worker processes); default this process."),
    report_dir: Path = typer.Option(Path("reports"), help="Where the run folder (record.json, report.html) goes."),
    no_record: bool = typer.Option(False, "--no-record", help="Print the table only; write no files."),
) -> None:
    """Sweep a pair layer by layer: the ladder's verdict per layer pair, and the first layer where it breaks."""
    from .errors import EquivtestError
    from .userpairs import load_spec, sweep_inputs

    def split(value):
        return None if value is None else [v.strip() for v in value.split(",") if v.strip()]

    try:
        spec = load_spec(target, needs=())
        inputs = sweep_inputs(spec)
        pair = spec.function()
        result, timings = _sweep_with_progress(pair, inputs, split(layers_a), split(layers_b), mode=mode, up_to=up_to,
                                               rungs=split(rungs), engine=_engine(engine), device=device)
    except (EquivtestError, ImportError) as exc:  # ImportError: --engine without the distributed extra
        notes = "".join(f"\n{n}" for n in getattr(exc, "__notes__", ()))  # the cell a worker failed on
        console.print(f"[red]{escape(str(exc) + notes)}[/]", soft_wrap=True)
        raise typer.Exit(2)
    from .report.sweep import sweep_table

    table = sweep_table(result.to_dict())
    console.print(table.to_rich())
    console.print("timings: " + ", ".join(f"{k.removesuffix('_s')} {v:.2f}s" for k, v in timings.items()))
    if not no_record:
        options = {"mode": mode, "up_to": up_to, "rungs": rungs, "device": device}
        _write_sweep_folder(pair, result, table, timings, report_dir, options)
    first = result.first_failure
    if first is not None:
        console.print(f"[bold red]first layer not equivalent up to {escape(up_to)}: {escape(first['layer_a'])}[/] "
                      f"({escape(first['by'])})", soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[bold green]every layer equivalent up to {escape(up_to)}[/]")


def _engine(address: Optional[str]):
    """``--engine``: ``None`` (this process), a Dask scheduler address (``tcp://host:port``) or
    ``local:N`` (a local cluster of N worker processes), given to ``executor_for``."""
    if address is None:
        return None
    from .distributed import executor_for

    return executor_for(address)


def _sweep_with_progress(pair, inputs, layers_a, layers_b, **options):
    """The sweep with rich progress bars on the captures and the fits; (result, timings)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .sweep import sweep

    names = {"capture a": f"capturing {pair.names[0]}", "capture b": f"capturing {pair.names[1]}",
             "fit": "fitting the ladder per layer pair"}
    started, timings = {}, {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bars:
        tasks = {}

        def progress(stage, done, total):
            if stage not in tasks:
                tasks[stage] = bars.add_task(escape(names.get(stage, stage)), total=total)
                started[stage] = time.perf_counter()
            bars.update(tasks[stage], completed=done, total=total)
            timings[f"{stage.replace(' ', '_')}_s"] = time.perf_counter() - started[stage]

        result = sweep(pair, inputs, layers_a, layers_b, progress=progress, **options)
    return result, timings


def _write_sweep_folder(pair, result, table, timings, report_dir: Path, options: dict) -> None:
    from .record import write_sweep_run
    from .report.html import write_html

    record = write_sweep_run(pair, result, report_dir, tables=[table], timings=timings, options=options)
    console.print(f"record: {record}", markup=False, soft_wrap=True)
    console.print(f"report: {write_html(record.parent)}", markup=False, soft_wrap=True)


def _stage(status, label: str):
    """Progress of a long run: the status line, and a log line per stage."""
    def stage(message: str) -> None:
        status.update(f"[bold]{escape(label)}[/]: {escape(message)}")
        console.log(message, markup=False)

    return stage


def _run_user_pair(target: str, report_dir: Optional[Path], null: int) -> None:
    from .errors import EquivtestError
    from .userpairs import load_spec, run_pair

    try:
        spec = load_spec(target)
    except EquivtestError as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2)
    with console.status(f"[bold]{escape(spec.name)}[/]: starting") as status:
        stage = _stage(status, spec.name)
        try:
            outcome = run_pair(spec, report_dir=report_dir, stage=stage, null_shuffles=null)
        except EquivtestError as exc:
            console.print(f"[red]{escape(str(exc))}[/]")
            raise typer.Exit(2)
    _report(outcome, f"{spec.name} ({target})")


def _report(outcome, title: str) -> None:
    from .report.terminal import print_results

    print_results(outcome.results, console, title=title)
    for table in outcome.tables:
        console.print(table.to_rich())
    timings = ", ".join(f"{k.removesuffix('_s')} {v:.2f}s" for k, v in outcome.timings.items())
    console.print(f"timings: {timings}")
    if outcome.records:
        from .report.html import write_html

        for record in outcome.records:
            console.print(f"record: {record}", markup=False, soft_wrap=True)
            console.print(f"report: {write_html(record.parent)}", markup=False, soft_wrap=True)
    if not outcome.passed:
        console.print(f"[bold red]{len(outcome.failures())} criterion(s) failed[/]")
        raise typer.Exit(1)
    console.print("[bold green]all criteria met[/]")


def _run_folder(path: Path) -> Path:
    folder = path.parent if path.name == "record.json" else path
    if not (folder / "record.json").exists():
        console.print(f"[red]no record.json in {escape(str(folder))}[/]; give a run folder written by `equivtest run` "
                      "or `pytest --equivtest-report-dir`")
        raise typer.Exit(2)
    return folder


def _latest_run(root: Path) -> Path:
    runs = sorted(root.glob("*/record.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        console.print(f"[red]no runs under {escape(str(root))}[/]; run `equivtest run 1d` first or name a run folder")
        raise typer.Exit(2)
    return runs[-1].parent


@app.command()
def report(
    run: Optional[Path] = typer.Argument(None, help="Run folder (or its record.json); default: the newest under --reports."),
    reports: Path = typer.Option(Path("reports"), help="Where to look for the newest run."),
    compare: Optional[list[Path]] = typer.Option(
        None, "--compare", help="Compare two runs: --compare RUN_A --compare RUN_B (or RUN_A RUN_B as arguments)."
    ),
) -> None:
    """Render a run's HTML report, or compare the criteria of two runs."""
    if compare:
        runs = list(compare) + ([run] if run is not None else [])
        if len(runs) != 2:
            console.print("[red]--compare needs exactly two runs[/]")
            raise typer.Exit(2)
        from .record import load_record
        from .report.terminal import comparison_table

        with _clear_errors():
            a, b = (load_record(_run_folder(r) / "record.json") for r in runs)
        console.print(comparison_table(a, b, str(runs[0]), str(runs[1])))
        return
    from .report.html import write_html

    folder = _run_folder(run) if run is not None else _latest_run(reports)
    with _clear_errors():
        page = write_html(folder)
    console.print(f"report: {page}", markup=False, soft_wrap=True)


@contextlib.contextmanager
def _clear_errors():
    """A damaged record or artefact exits 2 with its message, not a traceback."""
    from .errors import EquivtestError

    try:
        yield
    except EquivtestError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(2) from None


if __name__ == "__main__":  # pragma: no cover
    app()
