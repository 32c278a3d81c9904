"""The ``genmetrics`` command line (typer + rich).

Metric options are not hand-written here: ``--set METRIC.OPTION=VALUE`` is checked
against each metric's spec, and the list shown in ``--help`` is generated from the
registry.

Exit codes: 0 ok; 1 a metric failed (the scorecard is still written, listing the
error); 2 a usage or input error, reported in one line; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from genmetrics.errors import GenmetricsError, UsageError

EXIT_OK, EXIT_METRIC_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

# click's plain help layout: at 80 columns it wraps descriptions under long flag names
# instead of cutting the names (rich's panels did: "--inception-weig…"), and it shows
# every placeholder in one style (SAMPLES, PATH, INTEGER)
HELP_LAYOUT: dict[str, Any] = {"rich_markup_mode": None}

app = typer.Typer(
    **HELP_LAYOUT,
    name="genmetrics",
    help="Evaluate generative models: text, image and audio metrics with reference parity "
    "and reproducibility signatures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


assets_app = typer.Typer(
    **HELP_LAYOUT,
    help="Offline-first assets (WordNet, language models, weights): list, fetch, verify, path.",
    no_args_is_help=True,
)
app.add_typer(assets_app, name="assets")

stats_app = typer.Typer(
    **HELP_LAYOUT,
    help="Reference statistics for FID/KID: build them once from a folder, list them.",
    no_args_is_help=True,
)
app.add_typer(stats_app, name="stats")

cache_app = typer.Typer(
    **HELP_LAYOUT,
    help="The feature cache (Inception features by image content): info, clear.",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


@app.callback()
def _global_options(
    offline: Annotated[bool, typer.Option(
        "--offline", help="Never use the network (same as GENMETRICS_OFFLINE=1); a missing "
        "asset fails fast with the command that fetches it.")] = False,
) -> None:
    """Evaluate generative models: text, image and audio metrics with reference parity
    and reproducibility signatures."""
    if offline:
        import os

        os.environ["GENMETRICS_OFFLINE"] = "1"


def _options_help() -> str:
    """One line per metric option, generated from the registered specs."""
    from genmetrics.registry import get_metric, registrations

    lines = ["Metric options (--set METRIC.OPTION=VALUE):\n\n"]
    for name, modality, _ in registrations():
        try:
            spec = get_metric(name, modality).spec
        except GenmetricsError:
            continue
        where = f" ({modality} runs)" if modality else ""  # wer: text and audio
        for opt in spec.options:
            lines.append(f"{name}.{opt.name}={opt.default}{where}: {opt.describe()}\n\n")
    return "".join(lines)


class _MetricOptionsEpilog(TyperCommand):
    """A command whose epilog (every metric option, from the registry) is generated only
    when its help is shown: importing every metric module costs start-up time."""

    @property  # type: ignore[override]
    def epilog(self) -> str:
        return _options_help()

    @epilog.setter
    def epilog(self, value: str | None) -> None:  # click's __init__ sets it; generated instead
        pass


def parse_settings(settings: list[str]) -> dict[str, dict[str, Any]]:
    """``["bleu.tokenize=intl"]`` -> ``{"bleu": {"tokenize": "intl"}}`` (checked later)."""
    options: dict[str, dict[str, Any]] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        metric, dot, option = key.partition(".")
        if not (sep and dot and metric and option):
            raise UsageError(
                f"--set takes METRIC.OPTION=VALUE (e.g. bleu.tokenize=intl); got {item!r}"
            )
        options.setdefault(metric.strip(), {})[option.strip()] = value
    return options


def _err(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}", markup=True)


def _progress_factory(enabled: bool):
    """A ``progress`` argument for :func:`genmetrics.runner.score` drawing a rich bar."""
    if not enabled:
        return None, None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   transient=True, console=_stderr_console())

    def start(total: int):
        task = bar.add_task("scoring", total=total)
        return lambda done: bar.advance(task, done)

    return bar, start


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


#: set by :func:`main`: this process ends with the command it runs
_PROCESS_ENTRY = False


class LateInterrupts:
    """Ctrl-C (SIGINT) once the scorecard is being written: recorded, not raised.

    The contract of ``score``: a SIGINT that arrives before the scorecard starts being
    written stops the run (exit 130, nothing written); one that arrives later lets the
    whole scorecard be written and the run ends as it would have (exit 0, or 1 when a
    metric failed). Created from the main thread it takes over SIGINT at once, so no
    moment is left in which the signal is lost or raises mid-write. :meth:`release`
    gives SIGINT back -- except in the process's own entry point (:func:`main`), where
    the handler stays until exit so that the last instructions cannot be interrupted.
    """

    def __init__(self) -> None:
        import signal
        import threading

        self.received = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._record)

    def _record(self, signum: int, frame: Any) -> None:
        self.received = True

    def release(self, force: bool = False) -> None:
        """Give SIGINT back (``force``: even in the process's entry point)."""
        import signal

        if self._previous is not None and (force or not _PROCESS_ENTRY):
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def write_scorecard(card: Any, out: Path) -> None:
    """Write ``card`` to ``out`` ('-': standard output), timing the write into
    ``card.timing['write_s']`` (a file is written twice: the second copy records it)."""
    import time

    started = time.perf_counter()
    if str(out) == "-":
        card.to_json()
        card.timing["write_s"] = round(time.perf_counter() - started, 4)
        sys.stdout.write(card.to_json())
        return
    card.save(out)
    card.timing["write_s"] = round(time.perf_counter() - started, 4)
    card.timing["total_s"] = round(card.timing.get("total_s", 0.0) + card.timing["write_s"], 4)
    card.save(out)


STAGES = ("discover", "decode", "model", "metric", "diagnostics", "write")


def print_profile(card: Any) -> None:
    """The time per stage of a scored run (``--profile``), on standard error."""
    from rich.console import Console
    from rich.table import Table

    timing = card.timing
    total = timing.get("total_s", 0.0) or 1e-9
    table = Table(title="time per stage")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("share", justify="right")
    for stage in STAGES:
        seconds = timing.get(f"{stage}_s", 0.0)
        table.add_row(stage, f"{seconds:.3f}", f"{100 * seconds / total:.0f}%")
    other = max(0.0, total - sum(timing.get(f"{s}_s", 0.0) for s in STAGES))
    table.add_row("other (start-up, models loading)", f"{other:.3f}", f"{100 * other / total:.0f}%")
    table.add_row("total", f"{total:.3f}", "100%")
    console = Console(stderr=True)
    console.print(table)
    count = card.inputs["samples"]["count"]
    console.print(f"{count} samples, {count / total:.1f} samples/s end to end")
    cache = card.inputs.get("feature_cache")
    if cache:
        console.print(f"feature cache: {cache['hits']} hit(s), {cache['extracted']} extracted "
                      f"({cache['path']})")


SIGNATURE_FORMS = ("short", "full", "none")


def signature_line(result: Any, form: str, width: int | None = None,
                   modality: str | None = None) -> str:
    """A result's signature as the summary prints it: ``full`` (the whole string) or
    ``short`` (see :func:`genmetrics.signature.render_short`, fitted to ``width``)."""
    from genmetrics.signature import render_short

    if form == "full":
        return result.signature_str
    try:
        from genmetrics.registry import get_metric

        spec = get_metric(str(result.signature.get("metric")), modality).spec
        defaults = {o.name: o.default for o in spec.options}
    except Exception:  # a metric this install does not know: no defaults to compare with
        defaults = {}
    return render_short(result.signature, defaults, width)


def print_summary(card: Any, out: str | None, signatures: str = "short") -> None:
    """The terminal summary: a narrow table (metric, value, CI, n, direction), then one
    signature line per metric, then the reasons of failed and unavailable metrics and
    the run's notes, each on lines of their own (readable at 80 columns)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    count = card.inputs["samples"]["count"]
    table = Table(title=f"genmetrics · {card.modality} · {count} "
                  f"{'sample' if count == 1 else 'samples'}", title_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("better", justify="center", no_wrap=True)
    for name, r in card.metrics.items():
        ci = f"{r.ci95[0]:.4f}–{r.ci95[1]:.4f}" if r.ci95 else "-"
        table.add_row(name, f"{r.value:.4f}", ci, str(r.n), "↑" if r.higher_is_better else "↓")
    for name in card.errors:
        table.add_row(name, "[red]failed[/]", "-", "-", "")
    for name in card.unavailable:
        table.add_row(name, "[yellow]unavailable[/]", "-", "-", "")
    console.print(table)
    if card.metrics and signatures != "none":
        hint = "" if signatures == "full" else " (--signatures full for the whole strings)"
        console.print(f"signatures{hint}:")
        width = max(len(n) for n in card.metrics)
        for name, r in card.metrics.items():
            room = console.width - width - 3
            line = f" {name:<{width}}  {signature_line(r, signatures, room, card.modality)}"
            if signatures == "full":  # the whole string, left to the terminal to wrap
                console.print(line, markup=False, soft_wrap=True)
            else:  # one line each, never wrapped: cut with an ellipsis if the terminal is narrow
                console.print(line, markup=False, no_wrap=True, overflow="ellipsis", crop=True)
    for name, reason in card.errors.items():
        console.print(f"[red]failed[/] {escape(name)}: {escape(reason)}")
    for name, reason in card.unavailable.items():
        console.print(f"[yellow]unavailable[/] {escape(name)}: {escape(reason)}")
    if card.skipped:
        first = "; ".join(f"{s['path']}: {s['reason']}" for s in card.skipped[:3])
        console.print(f"[yellow]skipped {len(card.skipped)} input(s)[/] ({escape(first)}"
                      f"{'; ...' if len(card.skipped) > 3 else ''})")
    if card.warnings:
        console.print(f"[yellow]{len(card.warnings)} note(s)[/]:")
        for w in card.warnings[:5]:
            console.print(f" {escape(w['path'])}: {escape(w['message'])}")
        if len(card.warnings) > 5:
            console.print(f" ... and {len(card.warnings) - 5} more (the scorecard's "
                          "\"warnings\")")
    from genmetrics.scorecard import small_sample_note

    for name, r in card.metrics.items():  # e.g. FID on fewer images than features
        small = small_sample_note(r)
        if small:
            console.print(f"[yellow]{escape(name)}: small sample[/]: {escape(small)}")
    from genmetrics.diagnostics import summary

    flagged = summary(card.diagnostics)
    if flagged:
        console.print(f"[yellow]{flagged}[/]")
    if out:
        console.print(f"scorecard: {out}")


@app.command(cls=_MetricOptionsEpilog)
def score(
    samples: Annotated[Path, typer.Argument(
        help="Folder of samples (text, audio or images), a .txt / .jsonl file, or a .npy / "
        ".npz array of uint8 images.", metavar="SAMPLES")],
    reference: Annotated[list[Path] | None, typer.Option(
        "--reference", "-r",
        help="References: a folder (paired by relative path) or a line file. Repeat for "
        "several text reference sets. Images: the pairs of SSIM/PSNR and, without "
        "--reference-stats, the reference distribution of FID/KID.", metavar="PATH")] = None,
    reference_stats: Annotated[str | None, typer.Option(
        "--reference-stats", metavar="NAME|FILE.npz",
        help="Images: precomputed FID/KID reference statistics, by name (see `genmetrics "
        "stats list`) or path. Refused if made with other Inception weights.")] = None,
    inception_weights: Annotated[Path | None, typer.Option(
        "--inception-weights", metavar="PATH",
        help="Images: a torch-fidelity-format Inception state dict for FID/KID/IS (default: "
        "the inception-fid asset, or $GENMETRICS_INCEPTION_WEIGHTS); its digest goes "
        "into the signature.")] = None,
    transcripts: Annotated[Path | None, typer.Option(
        "--transcripts", metavar="FILE.jsonl",
        help='Audio (text-to-speech): what each clip should say, one {"id", "text"} per '
        "line, ids = clip names without the extension (default: a .txt beside each clip); "
        "for wer and cer.")] = None,
    speaker_reference: Annotated[Path | None, typer.Option(
        "--speaker-reference", metavar="PATH",
        help="Audio (text-to-speech): the prompt speaker's recording, one file for every "
        "clip or a folder paired with the clips by name; for speaker_sim.")] = None,
    prompts: Annotated[Path | None, typer.Option(
        "--prompts", metavar="FILE.jsonl",
        help='Images or audio made from prompts: one {"id", "prompt"} per line, ids = '
        "sample names without the extension (for a .npz/.npy input, or by line without "
        "ids); images default to a .txt beside each file (for audio a .txt beside a clip is "
        "its transcript, not its prompt); for clipscore and clap_score.")] = None,
    metadata: Annotated[Path | None, typer.Option(
        "--metadata", metavar="FILE.jsonl",
        help='One {"id", ...} per line (ids = sample names without the extension): fields '
        "that --group-by can name.")] = None,
    group_by: Annotated[str | None, typer.Option(
        "--group-by", metavar="FIELD",
        help="Also score every metric per value of FIELD (a slice: e.g. category), read from "
        "--metadata, else from the --prompts JSONL; the scorecard holds each slice with its "
        "n beside the overall value, and `gate`/`compare` check each slice.")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", help="auto (CUDA when present), cpu, cuda or cuda:N: where the run's "
        "models run (a metric's own --set NAME.device=... wins).", metavar="TEXT")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Images: decode processes (default: cores - 1, at most 8; 0 = "
        "decode in the main process).", metavar="INTEGER")] = None,
    modality: Annotated[str | None, typer.Option(
        "--modality", "-m", help="text, image or audio (default: guessed from the files).",
        metavar="TEXT")] = None,
    metrics: Annotated[str | None, typer.Option(
        "--metrics", help="Comma-separated metric names (default: every metric of the "
        "modality that the inputs allow). See `genmetrics list`.", metavar="TEXT")] = None,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", "-s", metavar="METRIC.OPTION=VALUE",
        help="Set a metric option, e.g. --set bleu.tokenize=intl (repeatable; listed below).")
    ] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Where to write the JSON scorecard ('-' for standard output).",
        metavar="PATH")
    ] = Path("scorecard.json"),
    per_sample: Annotated[bool, typer.Option(
        "--per-sample", help="Store each sample's value and statistics in the scorecard "
        "(needed by `gate` for paired significance tests).")] = False,
    bootstrap: Annotated[int, typer.Option(
        "--bootstrap", metavar="N", help="Add a 95% confidence interval to every metric from N "
        "bootstrap resamples (1000 is usual; 0 = off). Text metrics resample the per-sample "
        "statistics they already keep (a few numbers per sample), so the cost is N cheap "
        "re-aggregations, not N re-scorings. Distribution metrics (FID, sFID, KID, "
        "precision/recall/density/coverage...) get a rerun interval, value ± 1.96·√2·SE, "
        "from N replicates over their feature rows, kept in memory-mapped files beside the "
        "feature cache (200 is enough). Seed, N and the method go into the signature.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.",
        metavar="INTEGER")] = 12345,
    batch_size: Annotated[int | None, typer.Option(
        help="Samples per batch (default: 256 for text and audio, 64 for images).",
        metavar="INTEGER")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no table.")
                     ] = False,
    feature_cache: Annotated[bool, typer.Option(
        "--feature-cache/--no-feature-cache",
        help="Images: reuse Inception features stored by file content (a rerun on unchanged "
        "images skips the network, and with --no-diagnostics decoding too; see `genmetrics "
        "cache info`).")] = True,
    on_error: Annotated[str, typer.Option(
        "--on-error", metavar="skip|fail",
        help="An unreadable input (empty, truncated, undecodable, NaN audio...): skip it, "
        "score the rest and list it under the scorecard's skipped (default), or fail the run "
        "naming it.")] = "skip",
    diagnostics: Annotated[bool, typer.Option(
        "--diagnostics/--no-diagnostics",
        help="Cheap failure-mode checks of the samples, stored under the scorecard's "
        "diagnostics with each threshold and the flagged sample ids: text repetition, empty "
        "or short and identical outputs, distinct-1/2; image blur, near-duplicates, low "
        "diversity; audio clipping, silence, DC offset.")] = True,
    profile: Annotated[bool, typer.Option(
        "--profile", help="Print the time spent per stage (discover, decode, model, metric, "
        "diagnostics, write); the scorecard's timing records the same.")] = False,
    signatures: Annotated[str, typer.Option(
        "--signatures", metavar="short|full|none",
        help="Signatures under the summary table: short (one line per metric: changed "
        "options, what was compared, and a digest of the whole signature), full (the "
        "whole strings), or none. The scorecard always holds the full signature.")
    ] = "short",
) -> None:
    """Score SAMPLES (against --reference) and write a JSON scorecard.

    Example: genmetrics score --modality text hyps/ --reference refs/ --out card.json

    Several processes: torchrun --nproc-per-node N -m genmetrics score ... (each rank
    scores a contiguous shard; states are combined; rank 0 writes the scorecard).
    """
    from genmetrics.inputs import Inputs
    from genmetrics.runner import score as run_score

    if signatures not in SIGNATURE_FORMS:
        raise UsageError(f"--signatures {signatures!r}: choose short, full or none")
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    show = not quiet and str(out) != "-"
    first_rank = os.environ.get("RANK", "0") == "0"  # torchrun: one bar, from rank 0
    bar, progress = _progress_factory(show and first_rank and sys.stderr.isatty())
    if bar is not None:
        bar.start()
    try:
        try:
            inputs = Inputs.of(samples, reference or None, reference_stats=reference_stats,
                               transcripts=transcripts, speaker_reference=speaker_reference,
                               prompts=prompts, metadata=metadata, group_by=group_by,
                               workers=workers, on_error=on_error)
            card = run_score(inputs, modality=modality, metrics=names,
                             options=parse_settings(settings or []), per_sample=per_sample,
                             bootstrap=bootstrap, seed=seed, batch_size=batch_size,
                             progress=progress, inception_weights=inception_weights,
                             device=device, feature_cache=feature_cache,
                             diagnostics=diagnostics)
        finally:
            if bar is not None:
                bar.stop()
        late = LateInterrupts()  # from here on, Ctrl-C cannot stop the scorecard
    except KeyboardInterrupt:
        guard = LateInterrupts()  # a second Ctrl-C must not turn this message into a traceback
        _err("interrupted: no scorecard written. Features extracted so far are in the feature "
             "cache: the same command resumes from there")
        guard.release()
        raise typer.Exit(EXIT_INTERRUPTED) from None
    from genmetrics.distributed import shutdown, world
    from genmetrics.runner import hold_for_test

    try:
        if world()[0] == 0:  # under torchrun, every rank holds the result; rank 0 writes it
            write_scorecard(card, out)
            hold_for_test("written", until=lambda: late.received)
            if show:
                print_summary(card, None if str(out) == "-" else str(out), signatures)
            if profile:
                print_profile(card)
    finally:
        if world()[1] > 1:  # a rank waiting at the final barrier stays stoppable by Ctrl-C
            late.release(force=True)
        shutdown()
        late.release()
    if card.errors:
        raise typer.Exit(EXIT_METRIC_FAILED)


@app.command("list")
def list_command(
    modality: Annotated[str | None, typer.Option("--modality", "-m", help="Only this modality.",
        metavar="TEXT")
                        ] = None,
    options: Annotated[bool, typer.Option("--options", help="Also show each metric's options.")
                       ] = False,
) -> None:
    """List registered metrics (built-in and from installed plugins)."""
    from rich.console import Console
    from rich.table import Table

    from genmetrics.registry import BUILTIN, get_metric, registrations

    table = Table()
    shown = []
    for col in ("metric", "modality", "kind", "better", "unit", "source"):
        table.add_column(col)
    for name, registered, target in registrations():  # wer: one row per modality
        source = "built-in" if name in BUILTIN else f"plugin {target}"
        if modality and registered not in (None, modality):
            continue
        try:
            spec = get_metric(name, registered).spec
        except GenmetricsError as exc:
            table.add_row(name, "?", "?", "?", f"[red]unavailable: {exc}[/]", source)
            continue
        if modality and spec.modality != modality:
            continue
        row = [name, spec.modality, spec.kind, "higher" if spec.higher_is_better else "lower",
               spec.unit, source]
        table.add_row(*row)
        shown.append(spec)
    console = Console()
    console.print(table)
    if options:
        for spec in shown:
            for opt in spec.options:
                console.print(f"  --set {spec.name}.{opt.name}={opt.default}  {opt.describe()}",
                              markup=False, highlight=False)


@app.command()
def validate(
    cards: Annotated[list[Path], typer.Argument(help="Scorecard JSON files.", metavar="CARDS")],
) -> None:
    """Check scorecards against the shipped JSON Schema, and recompute every value and
    95% CI their per-sample statistics determine (exit 2 on the first invalid one)."""
    from genmetrics.errors import InputError
    from genmetrics.recompute import check_values
    from genmetrics.scorecard import Scorecard

    for path in cards:
        card = Scorecard.load(path)
        checked: list[str] = []
        problems = check_values(card, checked=checked)
        if problems:
            raise InputError(f"{path}: {'; '.join(problems)}")
        note = (f" ({', '.join(checked)} recomputed from per-sample statistics)" if checked
                else "")
        print(f"{path}: valid genmetrics scorecard v1{note}")


@app.command("gate")
def gate_command(
    new: Annotated[Path, typer.Argument(help="The new scorecard (JSON).", metavar="NEW")],
    baseline: Annotated[Path, typer.Option("--baseline", "-b", help="The baseline scorecard.",
        metavar="PATH")],
    rules: Annotated[Path | None, typer.Option(
        "--rules", help="TOML rules: [default] and [metrics.NAME] with max_drop, "
        "max_drop_relative, require_significance, alpha, replicates, ignore. Without it: a "
        "metric fails when worse than the baseline by more than the baseline's 95% CI "
        "half-width (a distribution metric against the same references, with its feature "
        "rows kept: 1.96 SE of the bootstrap difference), or 0.5% when it has no CI.",
        metavar="PATH")] = None,
    allow_signature_mismatch: Annotated[bool, typer.Option(
        "--allow-signature-mismatch", help="Compare even when signatures differ.")] = False,
    markdown_out: Annotated[Path | None, typer.Option(
        "--markdown", help="Also write a markdown summary (e.g. $GITHUB_STEP_SUMMARY).",
        metavar="PATH")] = None,
    junit_out: Annotated[Path | None, typer.Option(
        "--junit", help="Also write JUnit XML, one test case per metric.", metavar="PATH")] = None,
) -> None:
    """Fail (exit 1) when a metric of NEW is really worse than in the baseline.

    Exit codes: 0 pass, 1 regression, 2 usage or invalid input (a refusal, e.g. differing
    signatures, still writes --junit and --markdown, saying why).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from genmetrics import gate as g
    from genmetrics.io.common import write_text_atomically
    from genmetrics.scorecard import Scorecard

    try:
        report = g.gate(Scorecard.load(new), Scorecard.load(baseline), g.load_rules(rules),
                        allow_signature_mismatch)
    except GenmetricsError as exc:  # CI shows the refusal too, then exit 2
        for out, text in ((markdown_out, g.refusal_markdown), (junit_out, g.refusal_junit)):
            if out:
                write_text_atomically(out, text(str(exc)))
        raise
    table = Table(title=f"genmetrics gate: {escape(str(new))} vs {escape(str(baseline))}",
                  title_justify="left")
    for header in g.HEADERS[:-1]:  # notes go below: short cells never wrap mid-word
        table.add_column(header, no_wrap=True, overflow="ellipsis",
                         justify="left" if header in ("metric", "status") else "right")
    rows = g.report_rows(report)
    styles = {"PASS": "green", "SKIPPED": "yellow"}
    for row in rows:
        table.add_row(*map(escape, row[:6]), f"[{styles.get(row[6], 'red')}]{row[6]}[/]")
    console = Console(highlight=False)
    console.print(table)
    for row in rows:
        if row[7]:
            console.print(f" {row[0]}: {row[7]}", markup=False)
    for note in g.notes(report):
        console.print(note, markup=False)
    if markdown_out:
        write_text_atomically(markdown_out, g.markdown(report))
    if junit_out:
        write_text_atomically(junit_out, g.junit_xml(report))
    if report.passed:
        console.print("[green]gate passed[/]")
    else:
        names = ", ".join(c.metric for c in report.regressions)
        console.print(f"[red]gate failed: {escape(names)}[/]")
        raise typer.Exit(EXIT_METRIC_FAILED)


@app.command("compare")
def compare_command(
    cards: Annotated[list[Path] | None, typer.Argument(
        help="Two or more scorecard JSON files; the first is the baseline of the deltas.",
        show_default=False, metavar="CARDS")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="table, markdown, csv or json.", metavar="TEXT")] = "table",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write to this file instead of standard output.",
        metavar="PATH")] = None,
) -> None:
    """Compare scorecards side by side: values, 95% CIs, delta and CI overlap vs the first.

    Results with different signatures are compared but flagged (≠sig).

    Example: genmetrics compare base.json new.json --format markdown
    """
    from genmetrics.compare import run_compare

    text = run_compare(cards or [], fmt, out)
    if out is None:
        sys.stdout.write(text)


@assets_app.command("list")
def assets_list(
    verify: Annotated[bool, typer.Option(
        "--verify/--no-verify", help="Check sha256 sums (reads every file).")] = True,
) -> None:
    """Each asset: where it was found, where it came from, and whether its checksum verified."""
    from rich.console import Console
    from rich.table import Table

    from genmetrics import assets

    table = Table()
    for col in ("asset", "status", "origin", "checksum", "path"):
        table.add_column(col, overflow="fold")
    for name, asset in assets.ASSETS.items():
        found = asset.locate(build=False)
        if found is None:
            source = asset.local_source()
            status = "buildable offline" if source else "[red]missing[/]"
            origin = f"will be built from {source}" if source else asset.fetch_command
            table.add_row(name, status, origin, "-", "-")
            continue
        if verify:
            problems = assets.verify(name)
            check = "[green]verified[/]" if not problems else f"[red]{'; '.join(problems)}[/]"
        else:
            check = "not checked"
        table.add_row(name, "available", found.origin, check, str(found.path))
    Console().print(table)
    from genmetrics.assets import home

    Console().print(f"cache: {home()} (set GENMETRICS_HOME to move it)")


@assets_app.command("fetch")
def assets_fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Assets to fetch (default: all).",
        metavar="NAMES")
                     ] = None,
) -> None:
    """Make assets available: build from local sources, else download (unless --offline)."""
    from genmetrics import assets

    for name in names or [n for n, a in assets.ASSETS.items() if a.by_default]:
        found = assets.fetch(name)
        print(f"{name}: {found.path} ({found.origin})")


@assets_app.command("verify")
def assets_verify(
    names: Annotated[list[str] | None, typer.Argument(help="Assets to check (default: all).",
        metavar="NAMES")
                     ] = None,
) -> None:
    """Check cached assets against their sha256 manifests; exit 1 on any problem."""
    from genmetrics import assets

    bad = False
    for name in names or [n for n, a in assets.ASSETS.items() if a.by_default]:
        problems = assets.verify(name)
        print(f"{name}: {'ok' if not problems else '; '.join(problems)}")
        bad = bad or bool(problems)
    if bad:
        raise typer.Exit(EXIT_METRIC_FAILED)


@assets_app.command("path")
def assets_path(name: Annotated[str, typer.Argument(help="Asset name.", metavar="NAME")]) -> None:
    """Print the local path of an asset (building it from a local source if needed)."""
    from genmetrics import assets

    print(assets.resolve(name))


@stats_app.command("build")
def stats_build(
    folder: Annotated[Path, typer.Argument(help="Folder of reference images (or a .npy/.npz "
                                           "array of uint8 images).", metavar="FOLDER")],
    name: Annotated[str, typer.Option("--name", help="Name to score against later with "
                                      "--reference-stats NAME.", metavar="TEXT")],
    out_dir: Annotated[Path, typer.Option(
        "--out-dir", help="Where NAME.npz and manifest.json go.",
        metavar="PATH")] = Path("reference_stats"),
    source: Annotated[str, typer.Option(
        "--source", help="A description of where the images come from (kept in the "
        "manifest).", metavar="TEXT")] = "",
    keep_features: Annotated[int, typer.Option(
        "--keep-features", metavar="N", help="Also store the features (KID needs them) when "
        "there are at most N images (8 KiB per image).")] = 10_000,
    inception_weights: Annotated[Path | None, typer.Option(
        "--inception-weights", metavar="PATH",
        help="A torch-fidelity-format Inception state dict (default: the inception-fid "
        "asset).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.",
        metavar="TEXT")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per batch.", metavar="INTEGER")] = 64,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    feature_cache: Annotated[bool, typer.Option(
        "--feature-cache/--no-feature-cache",
        help="Reuse Inception features stored by file content, the cache `score` uses (a "
        "rerun on unchanged images neither decodes them nor runs the network; see "
        "`genmetrics cache info`).")] = True,
    features: Annotated[str, typer.Option(
        "--features", metavar="BACKBONE",
        help="The backbone whose features the statistics hold (inception, dinov2-vitl14, "
        "clip-vitl14-336, ...): metrics on another backbone refuse them.")] = "inception",
    weights: Annotated[Path | None, typer.Option(
        "--weights", metavar="DIR",
        help="With --features: the backbone's local model folder (save_pretrained).")] = None,
) -> None:
    """Extract Inception features of FOLDER and write OUT_DIR/NAME.npz (mean, covariance,
    n; float64, no pickle) plus a manifest entry with the extractor signature and sha256.
    The file holds the pool3 statistics (FID) and the spatial ones (sFID), and the pool3
    feature rows (KID, precision/recall) up to --keep-features images.

    Example: genmetrics stats build refs/ --name my-refs && genmetrics score samples/
    --reference-stats my-refs
    """
    from genmetrics.reference_stats import build_stats

    if features != "inception" and inception_weights is not None:
        raise UsageError(f"--inception-weights is for --features inception; give the "
                         f"{features} model folder with --weights DIR")
    if features == "inception" and weights is not None:
        raise UsageError("--weights is for another backbone (--features BACKBONE); give "
                         "Inception weights with --inception-weights")
    chosen = inception_weights if features == "inception" else weights
    bar, progress = _progress_factory(not quiet and sys.stderr.isatty())
    if bar is not None:
        bar.start()
    try:
        path, entry = build_stats(folder, name, out_dir=out_dir, source=source,
                                  weights=str(chosen) if chosen else None,
                                  device=device, batch_size=batch_size,
                                  keep_features=keep_features, progress=progress,
                                  feature_cache=feature_cache, features=features)
    finally:
        if bar is not None:
            bar.stop()
    what = ("pool3 and spatial (sFID) statistics" if "backbone" not in entry else
            f"{entry['backbone']} embedding statistics")
    print(f"{path}: {entry['n']} images, sha256 {entry['sha256'][:12]}..., {what}, feature rows "
          f"{'kept' if entry['features_kept'] else 'not kept'}"
          + (f", {entry['skipped']} unreadable file(s) skipped" if entry["skipped"] else ""))
    cache = entry.get("feature_cache")
    if cache:
        print(f"feature cache: {cache['hits']} hit(s), {cache['extracted']} extracted "
              f"({cache['path']})")


@stats_app.command("list")
def stats_list() -> None:
    """List the reference statistics that --reference-stats NAME can find, in search order."""
    from genmetrics.reference_stats import read_manifest, search_dirs

    for folder in search_dirs():
        for name, entry in read_manifest(folder).items():
            print(f"{name}\t{entry.get('n', '?')} images\t{folder / entry['file']}\t"
                  f"{entry.get('source', '')}")


def main() -> None:
    """Entry point: run the app, turning user errors into one-line messages (exit 2)."""
    global _PROCESS_ENTRY
    _PROCESS_ENTRY = True
    try:
        app()  # click's standalone mode handles usage errors (exit 2) and Ctrl-C
    except GenmetricsError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)


@cache_app.command("info")
def cache_info_command() -> None:
    """Where the feature cache is, and each namespace (one per extractor) with its size.

    Set GENMETRICS_CACHE_DIR to move it; `genmetrics score --no-feature-cache` bypasses it.
    """
    from rich.console import Console
    from rich.table import Table

    from genmetrics.features.cache import cache_info, cache_root
    from genmetrics.features.rowstore import rows_root, rows_size

    console = Console()
    namespaces = cache_info()
    console.print(f"feature cache: {cache_root()}")
    runs, size = rows_size()
    if runs:  # --bootstrap N keeps feature rows of the last few runs
        console.print(f"rows kept for intervals: {runs} run(s), {_size(size)}, in "
                      f"{rows_root()}", highlight=False)
    if not namespaces:
        console.print("empty")
        return
    table = Table()
    for col in ("namespace", "images", "size", "extractor"):
        table.add_column(col, overflow="fold")
    for info in namespaces:
        made_by = info.provenance.get("provenance", {})
        label = ", ".join(f"{k}={v}" for k, v in sorted(made_by.items())) or "unknown"
        table.add_row(info.name, str(info.entries), _size(info.bytes), label)
    console.print(table)


@cache_app.command("clear")
def cache_clear_command() -> None:
    """Delete every cached feature (they are extracted again on the next run), and the
    feature rows kept by `score --bootstrap N` for intervals."""
    from genmetrics.features.cache import cache_root, clear
    from genmetrics.features.rowstore import clear_rows

    entries, size = clear()
    typer.echo(f"removed {entries} cached feature file(s), {_size(size)}, from {cache_root()}")
    runs, kept = clear_rows()
    if runs:
        typer.echo(f"removed the feature rows kept by {runs} run(s), {_size(kept)}")


def _size(count: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@app.command("logs")
def logs_command(
    path: Annotated[Path, typer.Argument(help="TensorBoard event file or runs folder, a .csv "
                                         "(step column + one per metric) or a .jsonl log, "
                                         "or a folder of several runs (one analysis each).",
                                         metavar="PATH")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where the PNGs and summary.json "
                                          "go.", metavar="PATH")] = Path("logs_report"),
    window: Annotated[int | None, typer.Option(
        "--window", metavar="N", help="Points in the last window of each test (default: 20% "
        "of the series, at least 10).")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", metavar="FILE", help="Also write the summary here ('-': standard output, "
        "no table).")] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="Train-loss series name.",
        metavar="TEXT")] = None,
    val_loss: Annotated[str | None, typer.Option("--val-loss", help="Validation-loss series.",
        metavar="TEXT")
                        ] = None,
    lr: Annotated[str | None, typer.Option("--lr", help="Learning-rate series.",
        metavar="TEXT")] = None,
    grad_norm: Annotated[str | None, typer.Option("--grad-norm", help="Gradient-norm series.",
        metavar="TEXT")
                         ] = None,
    fail_on: Annotated[str | None, typer.Option(
        "--fail-on", metavar="V1,V2", help="Exit 1 when a finding has one of these verdicts: "
        "any (every flagged one), diverged, rising, plateau, overfitting, widening, spikes, "
        "exploding, vanishing.")] = None,
) -> None:
    """Read training logs and report: loss still falling or plateaued, train/validation gap
    (overfitting), learning-rate schedule, gradient-norm spikes, explosion or collapse.
    A nan that only fills a row of another kind (a validation row's train columns) is no
    value; a folder of several runs gets one analysis per run.

    Exit codes: 0 done; 1 a --fail-on verdict was found; 2 usage or unreadable logs.
    """
    from genmetrics.logs import cli_run

    code = cli_run(path, out_dir=out_dir, window=window, json_out=json_out, fail_on=fail_on,
                   roles={"train_loss": loss, "val_loss": val_loss, "lr": lr,
                          "grad_norm": grad_norm})
    if code:
        raise typer.Exit(code)


@app.command("report")
def report_command(
    cards: Annotated[list[Path] | None, typer.Argument(
        help="A scorecard JSON file, or two or more to compare (the first is the baseline).",
        show_default=False, metavar="CARDS")] = None,
    html: Annotated[Path, typer.Option(
        "--html", "-o", help="Where to write the HTML report.",
        metavar="PATH")] = Path("report.html"),
    k: Annotated[int, typer.Option(
        "--k", "-k", help="Worst and best samples shown per metric.", metavar="INTEGER")] = 5,
    root: Annotated[Path | None, typer.Option(
        "--root", help="Folder the scorecards' relative input paths are tried against "
        "first (default: the current folder; then each scorecard's folder and its parent).",
        metavar="PATH")
    ] = None,
) -> None:
    """Write one self-contained HTML page: metric table with CIs and signatures, per-sample
    histograms, worst and best samples beside their references, diagnostics, and a
    comparison when several scorecards are given (needs scores made with --per-sample
    for the samples).

    Example: genmetrics report out/demo-image.json --html report.html
    """
    from genmetrics.report import write_report

    path = write_report(cards or [], html, k=k, root=root)
    print(f"report: {path}")
