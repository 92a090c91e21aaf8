"""Drawing: a grid of panels, one per task or suite, each with its curves and their 95%
intervals (docs/design.md#plots). matplotlib's object API with the Agg canvas: no display, no
pyplot state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from curves import Curve
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

PANEL_SIZE = (4.2, 3.2)
"""Inches per panel (width, height)."""
MAX_COLUMNS = 4
PUBLISHED_STYLE = {"linestyle": "--", "marker": "o", "markersize": 4, "capsize": 3, "zorder": 3}
X_MARGIN = 0.04
"""Room right of --xmax, so a point at xmax shows whole (fraction of xmax)."""


def curve_legend(curve: Curve) -> str:
    """Legend text: the label and, for our runs, the seed count ("mbdpo torch (3 seeds)")."""
    if curve.label.startswith("published"):
        return f"{curve.label} ({curve.seeds} seeds)"
    return f"{curve.label} ({curve.seeds} seed{'s' if curve.seeds != 1 else ''})"


def grid_figure(
    title: str, panels: Sequence[tuple[str, str, Sequence[Curve]]], xmax: float | None
) -> Figure:
    """One panel per (title, y label, curves), ncols = min(4, n); x = environment steps.

    Each of our curves is its mean line and, with more than one seed, a shaded interval; a
    published curve is dashed with a marker and an interval bar at each published evaluation
    (they are sparse, often 100k steps apart). Colours follow the label, so a label has one
    colour in every panel.
    """
    ncols = min(MAX_COLUMNS, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    labels = list(dict.fromkeys(c.label for _, _, curves in panels for c in curves))
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for ax, (name, ylabel, curves) in zip(axes, panels, strict=False):
        for curve in curves:
            colour, legend = colours[curve.label], curve_legend(curve)
            if curve.label.startswith("published"):
                bars = [curve.mean - curve.low, curve.high - curve.mean]
                ax.errorbar(
                    curve.steps,
                    curve.mean,
                    yerr=bars,
                    color=colour,
                    label=legend,
                    **PUBLISHED_STYLE,
                )
                continue
            ax.plot(curve.steps, curve.mean, color=colour, label=legend, lw=2, zorder=4)
            if curve.seeds > 1:
                ax.fill_between(curve.steps, curve.low, curve.high, color=colour, alpha=0.2, lw=0)
        ax.set_title(name)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set_xlim(left=0, right=None if xmax is None else xmax * (1 + X_MARGIN))
        ax.grid(alpha=0.3)
        if curves:
            ax.legend(fontsize="small", loc="best")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{title}\nshaded or bars: 95% bootstrap interval of the mean over seeds", fontsize="medium"
    )
    return fig
