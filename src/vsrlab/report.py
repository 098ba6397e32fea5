"""``vsrlab-report <sweep dir>``: the results table of a Hydra multirun sweep.

Reads the sweep manifest (``sweep.json``, or, for older sweeps without one, the job directories and
their ``.hydra/overrides.yaml``) and every job's ``done`` marker, ``status.json`` and ``metrics.json``,
then writes into the output directory (the sweep directory unless ``--out`` is given):

* ``report.csv``: one row per job, in manifest order: plain numbers, empty cells for missing values;
* ``report.md``: the same table for humans, then the sections below as notes;
* ``heatmap_psnr.png`` and ``heatmap_gain_per_mparam.png`` when the sweep is a grid over offset groups
  ``G`` (a key ending in ``deformable_groups``) and offsets per group ``N`` (a key ending in
  ``num_offsets``): PSNR, and PSNR gain per million extra parameters over the ``G = N = 1`` baseline,
  as in Fig. 16 of Chan et al., "Understanding Deformable Alignment in Video Super-Resolution"
  (AAAI 2021);
* ``diversity_vs_psnr.png`` with the Pearson correlation between offset diversity and PSNR over the
  jobs, the relation of Fig. 9 of the same paper.

The table is also printed to the console with rich. ``--metric best|final`` chooses which validation
PSNR (the best one of the validation history, or the last one) the heatmaps and the correlation use.

    vsrlab-report logs/train/multiruns/offset_diversity
    vsrlab-report logs/train/multiruns/offset_diversity --out reports/od --metric final
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vsrlab.sweep import DONE_MARKER, MANIFEST, METRICS_FILE, STATUS_FILE, read_json, split_override

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.table import Table

MISSING = "—"
#: Marker files / folders whose presence makes an immediate subdirectory a job (scan mode).
JOB_MARKERS = (METRICS_FILE, STATUS_FILE, ".hydra", DONE_MARKER)
#: Fixed columns of the table: (header, row field).  The swept-key columns go after ``job``.
FIXED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("params", "params"),
    ("best val PSNR", "best_psnr"),
    ("best val SSIM", "best_ssim"),
    ("best step", "best_step"),
    ("final val PSNR", "final_psnr"),
    ("final val SSIM", "final_ssim"),
    ("offset diversity", "offset_diversity"),
    ("steps", "steps"),
    ("pre-emptions", "preemptions"),
    ("status", "status"),
)
METRIC_FIELDS = {"best": "best_psnr", "final": "final_psnr"}
G_SUFFIX, N_SUFFIX = "deformable_groups", "num_offsets"
HEATMAP_PSNR = "heatmap_psnr.png"
HEATMAP_GAIN = "heatmap_gain_per_mparam.png"
SCATTER = "diversity_vs_psnr.png"


class ReportError(SystemExit):
    """A sweep that cannot be reported (missing directory, no jobs, unreadable manifest).

    A :class:`SystemExit` whose message is printed by the interpreter, so the console script exits
    with status 1 and a readable message instead of a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"vsrlab-report: error: {message}")


# --------------------------------------------------------------------------------------------------
# small value helpers


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` when missing, not a number, NaN or infinite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_int(value: Any) -> int | None:
    """``value`` as an int (``"40"``, ``40.0`` -> 40), or ``None`` when it is not an integral number."""
    number = finite(value)
    return int(number) if number is not None and number.is_integer() else None


def format_params(count: int | float | None) -> str:
    """A parameter count for humans: ``1234567`` -> ``"1.23M"``, ``12345`` -> ``"12.3K"``."""
    if count is None:
        return MISSING
    if abs(count) >= 1e6:
        return f"{count / 1e6:.2f}M"
    if abs(count) >= 1e3:
        return f"{count / 1e3:.1f}K"
    return str(int(count))


def _natural_key(name: str) -> list[Any]:
    """Sort key putting ``"job2"`` before ``"job10"``."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` when the file is absent, unreadable or not an object
    (a job killed mid-write must not break the report)."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------------------------------
# manifest and jobs


def parse_overrides(lines: Iterable[Any]) -> dict[str, str]:
    """Hydra override strings (``"arch.num_offsets=4"``, ``"+x=1"``) as ``{key: value}``.

    Leading ``+`` / ``++`` are dropped, deletions (``~key``) and keys starting with ``hydra`` ignored.
    """
    overrides: dict[str, str] = {}
    for line in lines:
        if not isinstance(line, str) or "=" not in line or line.startswith("~"):
            continue
        key, value = split_override(line)
        if key and not key.startswith("hydra"):
            overrides[key.strip()] = value.strip()
    return overrides


def read_hydra_overrides(job_dir: Path) -> dict[str, str]:
    """The overrides of ``<job_dir>/.hydra/overrides.yaml``; empty when the file is absent or unreadable."""
    import yaml

    try:
        data = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return parse_overrides(data) if isinstance(data, list) else {}


def infer_swept_keys(overrides: Sequence[dict[str, str]]) -> list[str]:
    """Keys present in the overrides of every job with at least two different values, in the order
    they appear in the first job."""
    if not overrides:
        return []
    common = [key for key in overrides[0] if all(key in job for job in overrides)]
    return [key for key in common if len({str(job[key]) for job in overrides}) > 1]


def scan_job_dirs(sweep_dir: Path) -> list[str]:
    """Immediate subdirectories of ``sweep_dir`` that hold a job (:data:`JOB_MARKERS`), naturally sorted."""
    names = [
        p.name
        for p in sweep_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and any((p / m).exists() for m in JOB_MARKERS)
    ]
    return sorted(names, key=_natural_key)


def read_manifest(sweep_dir: str | Path) -> dict[str, Any]:
    """The sweep's name, swept keys and jobs (``[{"subdir", "overrides"}]``, in manifest order).

    From ``sweep.json`` when present, else by scanning the job directories (``source`` says which).
    Raises :class:`ReportError` when the directory is missing, ``sweep.json`` is unreadable, or there
    are no jobs.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ReportError(f"sweep directory not found: {sweep_dir}")
    manifest_path = sweep_dir / MANIFEST
    if manifest_path.exists():
        data = _read_json(manifest_path)
        if data is None:
            raise ReportError(f"cannot read the sweep manifest {manifest_path} (not a JSON object)")
        jobs = []
        for entry in data.get("jobs") or []:
            if isinstance(entry, str):
                entry = {"subdir": entry}
            if not isinstance(entry, dict) or not entry.get("subdir"):
                continue
            overrides = {str(k): str(v) for k, v in (entry.get("overrides") or {}).items()}
            jobs.append({"subdir": str(entry["subdir"]), "overrides": overrides})
        if not jobs:
            raise ReportError(f"the sweep manifest {manifest_path} lists no jobs")
        swept = data.get("swept_keys")
        swept_keys = [str(k) for k in swept] if isinstance(swept, list) else None
        source = MANIFEST
        name = str(data.get("name") or sweep_dir.resolve().name)
    else:
        subdirs = scan_job_dirs(sweep_dir)
        if not subdirs:
            raise ReportError(
                f"no jobs in {sweep_dir}: no sweep.json and no subdirectory with "
                f"metrics.json, status.json or .hydra/"
            )
        jobs = [{"subdir": s, "overrides": read_hydra_overrides(sweep_dir / s)} for s in subdirs]
        swept_keys, source, name = None, "scan", sweep_dir.resolve().name
    if swept_keys is None:
        swept_keys = infer_swept_keys([job["overrides"] for job in jobs])
    return {
        "name": name,
        "sweep_dir": str(sweep_dir),
        "source": source,
        "swept_keys": swept_keys,
        "jobs": jobs,
    }


def job_status(job_dir: Path, status: dict[str, Any] | None = None) -> str:
    """``done`` (marker file), else ``status.json``'s state, ``started`` (directory without either),
    or ``pending`` (no directory)."""
    if not job_dir.is_dir():
        return "pending"
    if (job_dir / DONE_MARKER).exists():
        return "done"
    if status is None:
        status = _read_json(job_dir / STATUS_FILE)
    state = (status or {}).get("state")
    return str(state) if state else "started"


def best_and_final(metrics: dict[str, Any]) -> dict[str, Any]:
    """Best and final validation results of a ``metrics.json``.

    Best: the ``val_history`` entry with the highest PSNR (the earliest on ties), with its SSIM and step;
    without a history, ``val/psnr_best`` (SSIM and step unknown).  Final: the last ``val_history``
    entry; without a history, ``val/psnr`` and ``val/ssim``.  Missing values are ``None``.
    """
    history = [h for h in metrics.get("val_history") or [] if isinstance(h, dict)]
    val = metrics.get("val") if isinstance(metrics.get("val"), dict) else {}
    out: dict[str, Any] = dict.fromkeys(("best_psnr", "best_ssim", "best_step", "final_psnr", "final_ssim"))
    scored = [h for h in history if finite(h.get("psnr")) is not None]
    if scored:
        best = max(scored, key=lambda h: finite(h["psnr"]))  # max keeps the first of equal values
        out.update(
            best_psnr=finite(best["psnr"]),
            best_ssim=finite(best.get("ssim")),
            best_step=as_int(best.get("step")),
        )
    else:
        out["best_psnr"] = finite(val.get("val/psnr_best"))
    if history:
        last = history[-1]
        out.update(final_psnr=finite(last.get("psnr")), final_ssim=finite(last.get("ssim")))
    else:
        out.update(final_psnr=finite(val.get("val/psnr")), final_ssim=finite(val.get("val/ssim")))
    return out


def read_job(sweep_dir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """One table row from the files of ``<sweep_dir>/<subdir>``.

    Swept values come from the manifest's overrides, else ``metrics.json``'s ``swept``, else
    ``.hydra/overrides.yaml``.
    """
    job_dir = sweep_dir / job["subdir"]
    metrics = _read_json(job_dir / METRICS_FILE) or {}
    status = _read_json(job_dir / STATUS_FILE) or {}
    metrics_swept = metrics.get("swept") if isinstance(metrics.get("swept"), dict) else {}
    swept = {
        **read_hydra_overrides(job_dir),
        **{str(k): str(v) for k, v in metrics_swept.items()},
        **job.get("overrides", {}),
    }
    params = metrics.get("params") if isinstance(metrics.get("params"), dict) else {}
    steps = as_int(metrics.get("global_step"))
    row: dict[str, Any] = {
        "job": job["subdir"],
        "dir": str(job_dir),
        "swept": swept,
        "params": as_int(params.get("total")),
        **best_and_final(metrics),
        "offset_diversity": finite(metrics.get("offset_diversity")),
        "steps": steps if steps is not None else as_int(status.get("step")),
        "max_steps": as_int(status.get("max_steps")),
        "preemptions": as_int(status.get("preemptions", 0)) if status else None,
        "status": job_status(job_dir, status),
        "error": status.get("error") if isinstance(status.get("error"), str) else None,
        "updated": status.get("updated"),
    }
    return row


def collect_jobs(sweep_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest (:func:`read_manifest`) and one row per job (:func:`read_job`), in manifest order.

    Row fields: ``job``, ``dir``, ``swept`` (``{key: value string}``), ``params``, ``best_psnr``,
    ``best_ssim``, ``best_step``, ``final_psnr``, ``final_ssim``, ``offset_diversity``, ``steps``,
    ``max_steps``, ``preemptions``, ``status``, ``error``, ``updated``; missing values are ``None``.
    """
    manifest = read_manifest(sweep_dir)
    sweep_dir = Path(sweep_dir)
    return manifest, [read_job(sweep_dir, job) for job in manifest["jobs"]]


# --------------------------------------------------------------------------------------------------
# table


def column_headers(swept_keys: Sequence[str]) -> dict[str, str]:
    """Header of each swept key: its last dotted component (``arch.num_offsets`` -> ``num_offsets``),
    or the full key when that component is shared with another swept key or a fixed column."""
    taken = {"job", *(header for header, _ in FIXED_COLUMNS)}
    last = [key.rsplit(".", 1)[-1] for key in swept_keys]
    return {
        key: short if last.count(short) == 1 and short not in taken else key
        for key, short in zip(swept_keys, last, strict=True)
    }


def table_columns(swept_keys: Sequence[str]) -> list[str]:
    """All column headers, in order."""
    return ["job", *column_headers(swept_keys).values(), *(header for header, _ in FIXED_COLUMNS)]


def _raw_cells(row: dict[str, Any], swept_keys: Sequence[str]) -> list[Any]:
    return [
        row["job"],
        *(row["swept"].get(key) for key in swept_keys),
        *(row[field] for _, field in FIXED_COLUMNS),
    ]


def csv_cells(row: dict[str, Any], swept_keys: Sequence[str]) -> list[str]:
    """The CSV cells of a row: plain numbers (full precision), empty strings for missing values."""
    return [
        "" if value is None else repr(value) if isinstance(value, float) else str(value)
        for value in _raw_cells(row, swept_keys)
    ]


def display_cells(row: dict[str, Any], swept_keys: Sequence[str]) -> list[str]:
    """The human-readable cells of a row (Markdown and console): PSNR in dB with 2 decimals, SSIM with
    4, parameters as ``1.23M``, ``—`` for missing values."""

    def fmt(value: Any, spec: str) -> str:
        return MISSING if value is None else format(value, spec)

    swept = [row["swept"].get(key) or MISSING for key in swept_keys]
    return [
        row["job"],
        *swept,
        format_params(row["params"]),
        fmt(row["best_psnr"], ".2f"),
        fmt(row["best_ssim"], ".4f"),
        fmt(row["best_step"], "d"),
        fmt(row["final_psnr"], ".2f"),
        fmt(row["final_ssim"], ".4f"),
        fmt(row["offset_diversity"], ".3f"),
        fmt(row["steps"], "d"),
        fmt(row["preemptions"], "d"),
        row["status"],
    ]


def write_csv(path: Path, rows: Sequence[dict[str, Any]], swept_keys: Sequence[str]) -> Path:
    """Write the table as CSV (header :func:`table_columns`)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(table_columns(swept_keys))
        writer.writerows(csv_cells(row, swept_keys) for row in rows)
    return path


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    """A Markdown table (first and ``status`` columns left-aligned, the others right-aligned)."""
    lines = [
        "| " + " | ".join(_md_escape(str(h)) for h in header) + " |",
        "|" + "|".join(":---" if i == 0 or h == "status" else "---:" for i, h in enumerate(header)) + "|",
    ]
    lines += ["| " + " | ".join(_md_escape(str(c)) for c in cells) + " |" for cells in body]
    return "\n".join(lines)


def rich_table(title: str, rows: Sequence[dict[str, Any]], swept_keys: Sequence[str]) -> Table:
    """The table as a :class:`rich.table.Table`."""
    from rich.table import Table

    styles = {"done": "green", "failed": "red", "preempted": "yellow", "running": "cyan"}
    table = Table(title=title)
    cells = [display_cells(row, swept_keys) for row in rows]
    for i, header in enumerate(table_columns(swept_keys)):
        if i == 0:  # long job names fold in narrow consoles; headers wrap, but values are never cut
            table.add_column(header, justify="left", overflow="fold", min_width=8)
        else:
            width = max((len(c[i]) for c in cells), default=1)
            table.add_column(header, justify="left" if header == "status" else "right", min_width=width)
    for row, row_cells in zip(rows, cells, strict=True):
        table.add_row(*row_cells, style=styles.get(row["status"]))
    return table


# --------------------------------------------------------------------------------------------------
# G x N grid (Fig. 16)


def find_gn_keys(swept_keys: Sequence[str]) -> tuple[str, str] | None:
    """The swept keys of the offset groups ``G`` (ending in ``deformable_groups``) and of the offsets per
    group ``N`` (ending in ``num_offsets``); ``None`` unless both are swept."""
    g = next((k for k in swept_keys if k.rsplit(".", 1)[-1] == G_SUFFIX), None)
    n = next((k for k in swept_keys if k.rsplit(".", 1)[-1] == N_SUFFIX), None)
    return (g, n) if g and n else None


def _axis_number(value: Any) -> int | float | None:
    number = finite(value)
    if number is None:
        return None
    return int(number) if number.is_integer() else number


def gn_grid(
    rows: Sequence[dict[str, Any]], g_key: str, n_key: str, field: str
) -> tuple[list[int | float], list[int | float], np.ndarray]:
    """``(G values, N values, grid)``: ``grid[i, j]`` is ``row[field]`` of the job with ``G = G values[i]``
    and ``N = N values[j]`` (both ascending, over all jobs of the sweep, finished or not); NaN where
    there is no such job or it has no value.

    Raises ``ValueError`` when a job's ``G`` or ``N`` is not a number, or two jobs share a cell.
    """
    cells: dict[tuple[Any, Any], float] = {}
    for row in rows:
        g, n = _axis_number(row["swept"].get(g_key)), _axis_number(row["swept"].get(n_key))
        if g is None or n is None:
            raise ValueError(f"job {row['job']} has no numeric {g_key} / {n_key}")
        if (g, n) in cells:
            raise ValueError(f"two jobs have {g_key}={g}, {n_key}={n}")
        value = finite(row.get(field))
        cells[(g, n)] = math.nan if value is None else value
    g_values = sorted({g for g, _ in cells})
    n_values = sorted({n for _, n in cells})
    grid = np.full((len(g_values), len(n_values)), np.nan)
    for (g, n), value in cells.items():
        grid[g_values.index(g), n_values.index(n)] = value
    return g_values, n_values, grid


def gain_per_mparam(
    psnr: np.ndarray,
    params: np.ndarray,
    g_values: Sequence[float],
    n_values: Sequence[float],
    baseline: tuple[float, float] = (1, 1),
) -> np.ndarray:
    """PSNR gain per million extra parameters over the ``G = N = 1`` baseline (Fig. 16, right):

        gain(G, N) = (PSNR(G, N) - PSNR(1, 1)) / ((params(G, N) - params(1, 1)) / 1e6)   [dB / M]

    NaN for the baseline itself, for cells without PSNR or parameter count, and for cells without
    extra parameters (``params(G, N) <= params(1, 1)``).  Raises ``ValueError`` when the baseline job
    is not in the grid or has no PSNR or parameter count.
    """
    g0, n0 = baseline
    if g0 not in g_values or n0 not in n_values:
        raise ValueError(f"no G={g0}, N={n0} baseline job in the sweep")
    i, j = list(g_values).index(g0), list(n_values).index(n0)
    psnr0, params0 = psnr[i, j], params[i, j]
    if not (np.isfinite(psnr0) and np.isfinite(params0)):
        raise ValueError(f"the G={g0}, N={n0} baseline job has no PSNR or parameter count yet")
    extra = (np.asarray(params, dtype=float) - params0) / 1e6
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (np.asarray(psnr, dtype=float) - psnr0) / extra
    gain[~(extra > 0)] = np.nan  # baseline, fewer/equal params, and NaN params
    return gain


def markdown_grid(
    grid: np.ndarray, g_values: Sequence[float], n_values: Sequence[float], fmt: str = ".2f"
) -> str:
    """A G x N grid as a Markdown table (rows ``G=…``, columns ``N=…``, ``—`` for NaN)."""
    body = [
        [f"G={g}", *(MISSING if not np.isfinite(v) else format(v, fmt) for v in grid[i])]
        for i, g in enumerate(g_values)
    ]
    return markdown_table(["G \\ N", *(f"N={n}" for n in n_values)], body)


def _new_figure(size: tuple[float, float]) -> Figure:
    """A matplotlib figure on the Agg canvas, independent of pyplot's global state and backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as _Figure

    fig = _Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_heatmap(
    grid: np.ndarray,
    g_values: Sequence[float],
    n_values: Sequence[float],
    path: str | Path,
    title: str,
    colorbar_label: str,
    fmt: str = ".2f",
) -> Path:
    """Save a G x N heatmap (rows G ascending, columns N ascending), each cell annotated with its value;
    NaN cells are left blank."""
    import matplotlib

    path = Path(path)
    fig = _new_figure((1.6 + 1.1 * len(n_values), 1.2 + 0.9 * len(g_values)))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    data = np.ma.masked_invalid(np.asarray(grid, dtype=float))
    image = ax.imshow(data, cmap=cmap, origin="upper", aspect="auto")
    fig.colorbar(image, ax=ax, label=colorbar_label)
    finite_values = data.compressed()
    lo, hi = (finite_values.min(), finite_values.max()) if finite_values.size else (0.0, 0.0)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            value = grid[i, j]
            if np.isfinite(value):
                dark = hi > lo and (value - lo) / (hi - lo) < 0.5  # viridis is dark at the low end
                ax.text(
                    j,
                    i,
                    format(value, fmt),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(len(n_values)), [str(n) for n in n_values])
    ax.set_yticks(range(len(g_values)), [str(g) for g in g_values])
    ax.set_xlabel("N (offsets per group)")
    ax.set_ylabel("G (offset groups)")
    ax.set_title(title)
    fig.savefig(path, dpi=120)
    return path


# --------------------------------------------------------------------------------------------------
# offset diversity vs PSNR (Fig. 9)


@dataclass
class Correlation:
    """Pearson correlation of ``n`` points; ``r`` and ``p`` are ``None`` when it is not computed, and
    ``reason`` says why."""

    n: int
    r: float | None = None
    p: float | None = None
    reason: str | None = None

    def sentence(self) -> str:
        """``Pearson r = 0.912 (p = 0.0312, 5 jobs)``, or why it was not computed."""
        if self.r is None:
            return f"Pearson r not computed: {self.reason}"
        return f"Pearson r = {self.r:.3f} (p = {self.p:.3g}, {self.n} jobs)"


def diversity_points(
    rows: Sequence[dict[str, Any]], field: str = "best_psnr"
) -> list[tuple[str, float, float]]:
    """``(job, offset diversity, PSNR)`` of the jobs having both as finite numbers."""
    points = []
    for row in rows:
        x, y = finite(row.get("offset_diversity")), finite(row.get(field))
        if x is not None and y is not None:
            points.append((row["job"], x, y))
    return points


def pearson_correlation(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Pearson r and its two-sided p-value (:func:`scipy.stats.pearsonr`), computed only with at least
    3 points and when neither variable is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 3:
        return Correlation(
            n, reason=f"{n} job{'s' if n != 1 else ''} with both offset diversity and PSNR (needs at least 3)"
        )
    if np.ptp(x) == 0:
        return Correlation(n, reason=f"offset diversity is the same for all {n} jobs")
    if np.ptp(y) == 0:
        return Correlation(n, reason=f"PSNR is the same for all {n} jobs")
    from scipy.stats import pearsonr

    result = pearsonr(x, y)
    return Correlation(n, r=float(result.statistic), p=float(result.pvalue))


def plot_diversity_scatter(
    points: Sequence[tuple[str, float, float]],
    path: str | Path,
    psnr_label: str,
    correlation: Correlation | None = None,
) -> Path:
    """Save the offset diversity vs PSNR scatter, each point labelled with its job."""
    path = Path(path)
    fig = _new_figure((8.0, 5.0))
    ax = fig.add_subplot()
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    ax.scatter(xs, ys, color="tab:blue")
    for job, x, y in points:
        ax.annotate(job, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.set_xlabel("offset diversity")
    ax.set_ylabel(psnr_label)
    title = "Offset diversity vs PSNR"
    if correlation is not None and correlation.r is not None:
        title += f" (r = {correlation.r:.3f}, p = {correlation.p:.3g})"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
    return path


# --------------------------------------------------------------------------------------------------
# report


def gn_section(
    manifest: dict[str, Any], rows: Sequence[dict[str, Any]], out_dir: Path, metric: str
) -> tuple[list[str], list[Path]]:
    """The Markdown lines of the G x N section and the heatmaps written (none when not applicable)."""
    keys = find_gn_keys(manifest["swept_keys"])
    if keys is None:
        return [], []
    g_key, n_key = keys
    field, label = METRIC_FIELDS[metric], f"{metric} val PSNR"
    lines = ["## G x N grid (Fig. 16 of Chan et al., AAAI 2021)", ""]
    others = [
        k for k in manifest["swept_keys"] if k not in keys and len({row["swept"].get(k) for row in rows}) > 1
    ]
    if others:
        lines.append(f"Heatmaps skipped: other swept keys vary too ({', '.join(others)}).")
        return lines + [""], []
    try:
        g_values, n_values, psnr = gn_grid(rows, g_key, n_key, field)
        _, _, params = gn_grid(rows, g_key, n_key, "params")
    except ValueError as err:
        return lines + [f"Heatmaps skipped: {err}.", ""], []
    written: list[Path] = []
    lines += [f"### {label} (dB)", "", markdown_grid(psnr, g_values, n_values), ""]
    if np.isfinite(psnr).any():
        written.append(
            plot_heatmap(psnr, g_values, n_values, out_dir / HEATMAP_PSNR, f"{label} (dB)", "PSNR (dB)")
        )
    else:
        lines += [f"`{HEATMAP_PSNR}` not written: no job has a {label} yet.", ""]
    lines += ["### PSNR gain per 1M extra parameters over G=1, N=1 (dB / M)", ""]
    try:
        gain = gain_per_mparam(psnr, params, g_values, n_values)
    except ValueError as err:
        lines += [f"Gain heatmap skipped: {err}.", ""]
    else:
        lines += [markdown_grid(gain, g_values, n_values, ".3f"), ""]
        if np.isfinite(gain).any():
            written.append(
                plot_heatmap(
                    gain,
                    g_values,
                    n_values,
                    out_dir / HEATMAP_GAIN,
                    f"{label} gain per 1M extra params (dB / M)",
                    "dB per 1M params",
                    ".3f",
                )
            )
        else:
            lines += [f"`{HEATMAP_GAIN}` not written: no job with extra parameters has a result yet.", ""]
    if written:
        lines += ["Heatmaps: " + ", ".join(f"`{p.name}`" for p in written) + ".", ""]
    return lines, written


def correlation_section(
    rows: Sequence[dict[str, Any]], out_dir: Path, metric: str
) -> tuple[list[str], Correlation, Path | None]:
    """The Markdown lines of the offset diversity vs PSNR section, the correlation and the scatter
    written (``None`` when the correlation is not computed)."""
    field, label = METRIC_FIELDS[metric], f"{metric} val PSNR (dB)"
    points = diversity_points(rows, field)
    correlation = pearson_correlation([p[1] for p in points], [p[2] for p in points])
    lines = [
        "## Offset diversity vs PSNR (Fig. 9 of Chan et al., AAAI 2021)",
        "",
        f"{correlation.sentence()} — offset diversity against the {metric} val PSNR.",
        "",
    ]
    scatter = None
    if correlation.r is not None:
        scatter = plot_diversity_scatter(points, out_dir / SCATTER, label, correlation)
        lines += [f"Scatter: `{scatter.name}`.", ""]
    return lines, correlation, scatter


def _status_summary(rows: Sequence[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{count} {status}" for status, count in counts.items())


def render_markdown(
    manifest: dict[str, Any], rows: Sequence[dict[str, Any]], metric: str, sections: Sequence[Sequence[str]]
) -> str:
    """The whole ``report.md``: title, table, the given sections, then notes on failed jobs."""
    swept = manifest["swept_keys"]
    lines = [
        f"# Sweep report: {manifest['name']}",
        "",
        f"Sweep directory: `{manifest['sweep_dir']}` (jobs from {manifest['source']}) · "
        f"{len(rows)} jobs ({_status_summary(rows)}) · swept: "
        f"{', '.join(f'`{k}`' for k in swept) or 'nothing'} · heatmaps and correlation use the "
        f"**{metric}** val PSNR.",
        "",
        markdown_table(table_columns(swept), (display_cells(row, swept) for row in rows)),
        "",
    ]
    for section in sections:
        lines += list(section)
    failed = [row for row in rows if row["status"] == "failed"]
    if failed:
        lines += ["## Failed jobs", ""]
        lines += [f"- `{row['job']}`: {_md_escape(row['error'] or 'no error message')}" for row in failed]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsrlab-report",
        description="Results table (report.md, report.csv), G x N heatmaps and offset diversity vs PSNR "
        "correlation of a Hydra multirun sweep.",
    )
    parser.add_argument(
        "sweep_dir", type=Path, help="the multirun directory (with sweep.json or job subdirectories)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: the sweep directory)"
    )
    parser.add_argument(
        "--metric",
        choices=sorted(METRIC_FIELDS),
        default="best",
        help="validation PSNR used by the heatmaps and the correlation (default: best)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point: write ``report.md``, ``report.csv`` and the figures, print the table."""
    args = build_parser().parse_args(argv)
    manifest, rows = collect_jobs(args.sweep_dir)
    out_dir: Path = args.out if args.out is not None else args.sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    gn_lines, heatmaps = gn_section(manifest, rows, out_dir, args.metric)
    corr_lines, correlation, scatter = correlation_section(rows, out_dir, args.metric)
    csv_path = write_csv(out_dir / "report.csv", rows, manifest["swept_keys"])
    md_path = out_dir / "report.md"
    md_path.write_text(render_markdown(manifest, rows, args.metric, [gn_lines, corr_lines]))

    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, 200)  # piped or logged: do not squeeze the table into 80 columns
    console.print(rich_table(f"{manifest['name']} ({_status_summary(rows)})", rows, manifest["swept_keys"]))
    console.print(f"offset diversity vs {args.metric} val PSNR: {correlation.sentence()}", highlight=False)
    written = [md_path, csv_path, *heatmaps, *([scatter] if scatter else [])]
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
