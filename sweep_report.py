"""What a sweep (sweep.py) reports: its trials' names, the best trial, and the results as a TSV
table, a Markdown table and a heatmap (PNG) of the main dev metric over batch size x learning rate.

Plain values in, text or a PNG file out. matplotlib (the sweep's optional dependency,
requirements-sweep.txt) is imported only to draw, with the Agg backend (no display needed).
"""
import dataclasses
import math
from typing import Dict, List, Sequence

import file_io


def lr_text(learning_rate):
    """The shortest scientific notation that reads back as exactly `learning_rate`: 5e-05, 3e-04,
    1.5e-05 (trial names, table headings)."""
    for digits in range(17):
        text = f"{learning_rate:.{digits}e}"
        if float(text) == learning_rate:
            return text
    return repr(learning_rate)


def trial_name(batch_size, learning_rate):
    """The name of a trial, and of its directory: bs32_lr5e-05."""
    return f"bs{batch_size}_lr{lr_text(learning_rate)}"


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """A finished trial: its grid point, its dev metrics ({key: value}, the trial's results file)
    and which of them is the task's main metric."""
    batch_size: int
    learning_rate: float
    metrics: Dict[str, float]
    main_metric: str

    @property
    def name(self):
        return trial_name(self.batch_size, self.learning_rate)

    @property
    def value(self):
        return self.metrics[self.main_metric]


def best_trial(results: Sequence[TrialResult]) -> TrialResult:
    """The trial with the highest main metric (all main metrics here are better higher); NaN
    (a diverged trial) counts lowest; of equal values the first in `results` wins."""
    def key(result):
        value = result.value
        return -math.inf if value != value else value
    best = results[0]
    for result in results[1:]:
        if key(result) > key(best):
            best = result
    return best


def _number(value):
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def tsv_text(results: Sequence[TrialResult], best: TrialResult) -> str:
    """sweep_results.tsv: a header, then one row per trial in the order of `results`: trial,
    train_batch_size, learning_rate, best ("yes" for the best trial, else empty), the main metric
    (its name heads the column), then the trial's other results in name order."""
    main = best.main_metric
    others = sorted({key for r in results for key in r.metrics} - {main})
    lines = ["\t".join(["trial", "train_batch_size", "learning_rate", "best", main] + others)]
    for r in results:
        cells = [r.name, str(r.batch_size), lr_text(r.learning_rate),
                 "yes" if r is best else "", _number(r.value)]
        cells += [_number(r.metrics[key]) if key in r.metrics else "" for key in others]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def _cell(result):
    return "-" if result is None else f"{result.value:.4f}"


def markdown_text(results: Sequence[TrialResult], best: TrialResult, batch_sizes,
                  learning_rates, what) -> str:
    """sweep_results.md: a line naming the metric and the best trial, then the table of the main
    metric, a row per batch size and a column per learning rate (the best in bold; "-" for a point
    without a result). `what` says what was swept (the script and task, say)."""
    at = {(r.batch_size, r.learning_rate): r for r in results}
    lines = [f"Dev {best.main_metric} of {what} by batch size (rows) and learning rate "
             f"(columns); best: {best.name}, {best.main_metric} = {best.value:.4f} (bold).", "",
             "| batch size | " + " | ".join(lr_text(lr) for lr in learning_rates) + " |",
             "|---:|" + "---:|" * len(learning_rates)]
    for batch_size in batch_sizes:
        cells = []
        for lr in learning_rates:
            result = at.get((batch_size, lr))
            cells.append(f"**{_cell(result)}**" if result is best else _cell(result))
        lines.append(f"| {batch_size} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _grid(results, batch_sizes, learning_rates) -> List[List[float]]:
    at = {(r.batch_size, r.learning_rate): r.value for r in results}
    return [[at.get((b, lr), math.nan) for lr in learning_rates] for b in batch_sizes]


def write_heatmap(path, results: Sequence[TrialResult], best: TrialResult, batch_sizes,
                  learning_rates, what):
    """The main metric as a heatmap PNG at `path` (written atomically): batch sizes down,
    learning rates across, each cell labelled with its value, the best one framed."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import patches, pyplot  # pylint: disable=import-outside-toplevel
    values = _grid(results, batch_sizes, learning_rates)
    figure, axes = pyplot.subplots(figsize=(1.4 * len(learning_rates) + 2.6,
                                            0.8 * len(batch_sizes) + 1.8))
    image = axes.imshow(values, cmap="viridis", aspect="auto")
    figure.colorbar(image, ax=axes, label=f"dev {best.main_metric}")
    axes.set_xticks(range(len(learning_rates)), [lr_text(lr) for lr in learning_rates])
    axes.set_yticks(range(len(batch_sizes)), [str(b) for b in batch_sizes])
    axes.set_xlabel("learning rate")
    axes.set_ylabel("batch size")
    axes.set_title(f"{what}: best {best.name} ({best.value:.4f})", fontsize=10)
    low, high = min(_finite(values), default=0.0), max(_finite(values), default=1.0)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            dark = value == value and value < (low + high) / 2   # white text on dark cells
            axes.text(j, i, "-" if value != value else f"{value:.4f}", ha="center",
                      va="center", color="white" if dark else "black", fontsize=9)
    row, column = batch_sizes.index(best.batch_size), learning_rates.index(best.learning_rate)
    axes.add_patch(patches.Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False,
                                       edgecolor="red", linewidth=2.5))
    figure.tight_layout()
    with file_io.atomic_open(path, "wb") as f:
        figure.savefig(f, format="png", dpi=120)
    pyplot.close(figure)


def _finite(values):
    return [v for row in values for v in row if math.isfinite(v)]
