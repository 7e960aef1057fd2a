"""Draws `benchmarks/ab_configs.py --json` results as grouped bars: TFLOP/s of
every config and of SDPA's cuDNN backend per shape (non-causal and causal side by
side), one panel per dtype. Needs matplotlib; no GPU.

    python benchmarks/plot_ab.py ab128.json ab64.json --out picks.png [--title "..."]

Each JSON file becomes a row of panels (one per dtype it holds), so head dims
with different configs share one figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def shape_label(shape: list[int], causal: bool) -> str:
    b, hq, hkv, s = shape[:4]
    heads = f"{hq}/{hkv}" if hkv != hq else f"{hq}"
    return f"{b},{heads},{s}\n{'causal' if causal else 'non-causal'}"


def panels(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows by dtype, in file order."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["dtype"], []).append(r)
    return out


def variant_names(rows: list[dict]) -> list[str]:
    """Config names in first-seen order, then cudnn (if timed)."""
    names: list[str] = []
    for r in rows:
        for key in r:
            if key not in ("dtype", "shape", "causal", "cudnn") and key not in names:
                names.append(key)
    if any("cudnn" in r for r in rows):
        names.append("cudnn")
    return names


def plot(files: list[Path], out: Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = [panels(json.loads(f.read_text())["rows"]) for f in files]
    ncols = max(len(g) for g in grids)
    fig, axes = plt.subplots(
        len(grids), ncols, figsize=(6.5 * ncols, 3.6 * len(grids)), squeeze=False
    )
    for i, grid in enumerate(grids):
        for j, (dtype, rows) in enumerate(grid.items()):
            ax = axes[i][j]
            names = variant_names(rows)
            width = 0.8 / len(names)
            for n, name in enumerate(names):
                xs = [x + (n - (len(names) - 1) / 2) * width for x in range(len(rows))]
                ys = [r[name]["tflops"] if name in r else 0.0 for r in rows]
                ax.bar(xs, ys, width, label="SDPA cuDNN" if name == "cudnn" else name,
                       color="0.35" if name == "cudnn" else None)  # fmt: skip
            ax.set_xticks(range(len(rows)))
            ax.set_xticklabels([shape_label(r["shape"], r["causal"]) for r in rows], fontsize=7)
            ax.set_ylabel("TFLOP/s")
            ax.set_title(f"{dtype}, head dim {rows[0]['shape'][4]}", fontsize=9)
            ax.legend(fontsize=7, ncol=2)
        for j in range(len(grid), ncols):
            axes[i][j].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="ab_configs.py --json outputs")
    p.add_argument("--out", type=Path, required=True, help="the image to write")
    p.add_argument("--title")
    args = p.parse_args(argv)
    plot(args.files, args.out, args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
