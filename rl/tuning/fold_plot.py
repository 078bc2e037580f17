"""The fold report as a picture: per window, the policy's Sharpe and max drawdown beside every baseline's."""

from __future__ import annotations

from pathlib import Path

LABELS = {"policy": "policy", "buy_and_hold": "buy & hold", "const_exposure": "same exposure",
          "vol_target": "vol target (same risk)", "sma": "SMA 12/48", "flat": "flat"}


def plot_fold_report(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Two panels (Sharpe, max drawdown), one group of bars per (window, asset); writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in LABELS if all(n in r for r in rows)]
    x = np.arange(len(rows))
    width = 0.8 / len(names)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.6 * len(rows)), 7), sharex=True)
    for k, name in enumerate(names):
        for ax, key, scale in ((axes[0], "sharpe", 1.0), (axes[1], "max_drawdown", 100.0)):
            ax.bar(x + (k - (len(names) - 1) / 2) * width, [r[name][key] * scale for r in rows], width,
                   label=LABELS[name], color="black" if name == "policy" else None)
    axes[0].set_ylabel("Sharpe (annualised)")
    axes[1].set_ylabel("max drawdown (%)")
    axes[0].axhline(0, color="grey", lw=0.5)
    axes[1].set_xticks(x, [f"{r['fold']}\n{r['dataset'].split('-')[1].upper()}\n{r['start'][:10]}" for r in rows],
                       fontsize=8)
    axes[0].legend(fontsize=8, ncol=3)
    axes[0].set_title(title or "walk-forward folds and final test: policy vs baselines (net of costs)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
