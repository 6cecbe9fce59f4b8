"""Figures for the report: sample grids, ROC curves, confusion matrices, histories and the
verdict's forest plot."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.io import atomic_path  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def sample_grid(path, rows: list[tuple[np.ndarray, ...]], column_titles: list[str],
                row_titles: list[str], title: str) -> None:
    """A grid of grey images: one row per example, one column per role (e.g. source | result)."""
    n_rows, n_cols = max(1, len(rows)), len(column_titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols, 1.9 * n_rows + 0.4), squeeze=False)
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            axes[r][c].imshow(image, cmap="gray", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for c, name in enumerate(column_titles):
        axes[0][c].set_title(name, fontsize=9)
    for r, name in enumerate(row_titles):
        axes[r][0].set_ylabel(name, fontsize=7)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def roc_plot(path, curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> None:
    """ROC curves, one line per run label, AUC in the legend."""
    fig, ax = plt.subplots(figsize=(5.2, 5))
    for label, (fpr, tpr, auc) in sorted(curves.items()):
        ax.plot(fpr, tpr, lw=1.4, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="chance")
    ax.set(xlabel="1 − specificity (FPR)", ylabel="sensitivity (TPR)", xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def confusion_plot(path, matrix: np.ndarray, classes: list[str], title: str) -> None:
    fig, ax = plt.subplots(figsize=(3.2, 3))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(int(v)), ha="center", va="center",
                color="white" if v > matrix.max() / 2 else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes,
           yticklabels=classes, xlabel="predicted", ylabel="true", title=title)
    ax.title.set_fontsize(8)
    _save(fig, path)


def history_plot(path, histories: dict[str, dict[str, list[float]]], title: str) -> None:
    """Training and validation loss per epoch, one colour per run."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, hist) in enumerate(sorted(histories.items())):
        colour = f"C{i % 10}"
        for key, style, name in (("loss", "-", "train"), ("val_loss", "--", "val")):
            values = hist.get(key, [])
            ax.plot(range(1, len(values) + 1), values, c=colour, lw=1.2, ls=style, label=f"{label} {name}")
    ax.set(xlabel="epoch", ylabel="cross-entropy", title=title)
    ax.legend(fontsize=6, ncol=2)
    _save(fig, path)


def gan_training_plot(path, log, target: float | None, title: str, window: int = 25) -> None:
    """A GAN's CSV log (bench.gan.training.LOG_COLUMNS) against kimg: D and G losses (thin: per step;
    thick: running mean over ``window`` steps), and ADA's p with the overfitting heuristic r_t and
    its target (Karras et al. 2020b §3)."""
    kimg = log["kimg"].to_numpy()
    fig, (losses, ada) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (key, name) in enumerate((("loss_d", "D loss"), ("loss_g", "G loss"))):
        values = log[key].to_numpy(dtype=float)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid") if len(values) >= window else values
        losses.plot(kimg, values, c=f"C{i}", lw=0.5, alpha=0.35)
        losses.plot(kimg[len(kimg) - len(smooth):], smooth, c=f"C{i}", lw=1.5, label=name)
    losses.set(xlabel="thousands of real images shown (kimg)", ylabel="non-saturating loss", title="losses")
    losses.legend(fontsize=8)
    ada.plot(kimg, log["p"], c="C2", lw=1.5, label="ADA p")
    ada.plot(kimg, log["r_t"], c="C3", lw=0.8, alpha=0.7, label="r_t = E[sign D(real)]")
    if target is not None:
        ada.axhline(target, c="grey", ls="--", lw=1, label=f"target {target}")
    ada.set(xlabel="kimg", ylabel="probability / r_t", title="adaptive augmentation", ylim=(-0.05, 1.05))
    ada.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def activation_plot(path, rates: dict, title: str) -> None:
    """Byra 2021 Fig. 5–6 layout: A_l (Eq. 5) per residual block for every DRS run and its
    feature-extraction reference (left), and the activation-rate change ΔA_l (Eq. 7, right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for i, (label, frame) in enumerate(sorted(rates.items())):
        blocks = frame["block"].to_numpy()
        left.plot(blocks, frame["rate"], c=f"C{i % 10}", lw=1.3, label=label)
        right.plot(blocks, frame["rate_change"], c=f"C{i % 10}", lw=1.3, label=label)
        if i == 0:
            left.plot(blocks, frame["rate_reference"], c="grey", ls="--", lw=1.1,
                      label="feature-extraction reference")
    left.set(xlabel="residual block l", ylabel="activation rate A_l", ylim=(0, 1), title="Eq. 5")
    right.set(xlabel="residual block l", ylabel="activation rate change ΔA_l", ylim=(0, None), title="Eq. 7")
    left.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def relevance_plot(path, inputs: np.ndarray, maps: dict[str, np.ndarray], masks: np.ndarray | None,
                   titles: list[str], title: str) -> None:
    """One column per image: the model input (lesion outline in green where there is a mask),
    then one row per relevance map (red positive, blue negative, symmetric colour scale per
    image, over the input in grey)."""
    n = len(inputs)
    rows = 1 + len(maps)
    fig, axes = plt.subplots(rows, n, figsize=(1.7 * n, 1.8 * rows), squeeze=False)
    for j in range(n):
        ax = axes[0, j]
        ax.imshow(inputs[j], cmap="gray")
        if masks is not None and masks[j].any():
            ax.contour(masks[j].astype(float), levels=[0.5], colors="lime", linewidths=0.8)
        ax.set_title(titles[j], fontsize=6)
        for i, (name, m) in enumerate(maps.items(), start=1):
            ax = axes[i, j]
            limit = float(np.abs(m[j]).max()) or 1.0
            ax.imshow(inputs[j], cmap="gray", alpha=0.5)
            ax.imshow(m[j], cmap="bwr", vmin=-limit, vmax=limit, alpha=0.75)
            if masks is not None and masks[j].any():
                ax.contour(masks[j].astype(float), levels=[0.5], colors="lime", linewidths=0.6)
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    _save(fig, path)


VERDICT_STYLE = {"helps": ("tab:green", "helps"), "hurts": ("tab:red", "hurts"),
                 "no evidence": ("0.45", "no evidence")}


def forest_plot(path, panels: dict[str, list[dict]], title: str, xlabel: str) -> None:
    """A forest plot, one panel per classifier (``panels``: its title -> rows, top first). A row is a
    dict with ``label``, ``delta``, ``low``, ``high``, ``verdict`` ("helps" / "hurts" / "no evidence")
    and ``control`` (True: drawn as a diamond below a dotted line, the methods above it). The
    point is ``delta``, the line ``[low, high]``, colour by verdict; a vertical line marks 0."""
    sizes = [max(1, len(rows)) for rows in panels.values()] or [1]
    fig, axes = plt.subplots(len(sizes), 1, figsize=(7, 0.9 + 0.34 * sum(sizes) + 0.5 * len(sizes)),
                             squeeze=False, sharex=True, gridspec_kw={"height_ratios": sizes})
    for ax, (name, rows) in zip(axes[:, 0], panels.items(), strict=True):
        _forest_panel(ax, rows)
        ax.set_title(literal(name), fontsize=9, loc="left")
    axes[-1, 0].set_xlabel(xlabel)
    handles = [plt.Line2D([], [], color=c, marker="o", ls="-", label=text) for c, text in VERDICT_STYLE.values()]
    handles.append(plt.Line2D([], [], color="0.3", marker="D", ls="", label="control"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(literal(title), fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _save(fig, path)


def literal(text: str) -> str:
    """``text`` as matplotlib draws it verbatim: a '$' in a user's method name starts no mathtext."""
    return str(text).replace("$", r"\$")


def _forest_panel(ax, rows: list[dict]) -> None:
    y = np.arange(len(rows))[::-1]
    for pos, row in zip(y, rows, strict=True):
        colour = VERDICT_STYLE.get(row["verdict"], ("0.45", ""))[0]
        if np.isfinite(row["low"]) and np.isfinite(row["high"]):
            ax.hlines(pos, row["low"], row["high"], color=colour, lw=1.6)
        if np.isfinite(row["delta"]):
            ax.plot(row["delta"], pos, marker="D" if row["control"] else "o", ms=6, color=colour,
                    mec="black" if row["control"] else colour, ls="")
    n_methods = sum(not r["control"] for r in rows)
    if 0 < n_methods < len(rows):  # a dotted line between the methods and the controls
        ax.axhline(y[n_methods - 1] - 0.5, color="0.6", ls=":", lw=0.8)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y, [literal(r["label"]) for r in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(axis="x", color="0.9", lw=0.6)
