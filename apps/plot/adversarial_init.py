#!/usr/bin/env python3
"""apps/plot/adversarial_init.py: figures of `minima adversarial-init`.

usage: python3 apps/plot/adversarial_init.py OUT_DIR

Reads OUT_DIR/runs/*/metrics.csv and summary.json and writes, as PNG and SVG:
  train_acc    training accuracy per epoch, mean over seeds, one line per (setup, init)
  test_acc     test accuracy per epoch, likewise
  complexity   the final complexity measures as grouped bars (setup x init), like the paper's
               ResNet50/CIFAR-10 figure
  r_sweep      final test accuracy against R (when several R were run)
  ablation     the setup x init table of final test accuracy
Curves and bars use the largest R that was run for the adversarial init.
"""
import csv
import glob
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SETUP_ORDER = ["vanilla", "DA", "M", "L2", "DA+M", "DA+L2", "M+L2", "sota"]
COLORS = {"random": "#1f77b4", "adversarial": "#d62728"}


def read_csv(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    out = {}
    for r in rows:
        for k, v in r.items():
            try:
                out.setdefault(k, []).append(float(v))
            except ValueError:
                out.setdefault(k, []).append(float("nan"))
    return out


def mean_std(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]  # None: a diverged run's norms
    if not xs:
        return float("nan"), 0.0
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, s


def save(fig, out, name):
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(out, name + "." + ext), dpi=130, bbox_inches="tight")
    plt.close(fig)


def main(out):
    runs = []
    for d in sorted(glob.glob(os.path.join(out, "runs", "*"))):
        s_path, m_path = os.path.join(d, "summary.json"), os.path.join(d, "metrics.csv")
        if not (os.path.exists(s_path) and os.path.exists(m_path)):
            continue
        with open(s_path) as f:
            s = json.load(f)
        s["metrics"] = read_csv(m_path)
        runs.append(s)
    if not runs:
        print("no finished runs under", out)
        return 1
    reps = sorted({r["replication"] for r in runs if r["init"] == "adversarial" and r["replication"] is not None})
    R = reps[-1] if reps else None
    setups = [s for s in SETUP_ORDER if any(r["setup"] == s for r in runs)]

    def select(init, setup, rep=R):
        return [r for r in runs if r["init"] == init and r["setup"] == setup and
                (init == "random" or r["replication"] == rep)]

    # Accuracy curves.
    for key, name, title in (("train_acc", "train_acc", "training accuracy"), ("test_acc", "test_acc", "test accuracy")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for setup in setups:
            for init in ("random", "adversarial"):
                rs = select(init, setup)
                if not rs:
                    continue
                n = min(len(r["metrics"][key]) for r in rs)
                pts = [(i + 1, mean_std([r["metrics"][key][i] for r in rs])[0]) for i in range(n)]
                pts = [(x, y) for x, y in pts if not math.isnan(y)]  # epochs without a test evaluation
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 30 else None, color=COLORS[init], linestyle="-" if setup == "vanilla" else "--"
                        if setup == "sota" else ":", label=f"{setup}, {init} init")
        ax.set_xlabel("epoch")
        ax.set_ylabel(title + " (%)")
        ax.set_title(title + (f" (adversarial init: R = {R})" if R else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, out, name)

    # Complexity bars.
    measures = [("frobenius_sq", "sum of squared\nFrobenius norms"), ("log10_spectral_product", "log10 product of\nspectral norms"),
                ("l2_path_norm", "l2 path norm"), ("l1_path_norm", "l1 path norm"), ("dist_from_init", "||w - w0|| / ||w0||"),
                ("test_acc", "test accuracy (%)")]
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 3.6))
    width = 0.38
    for ax, (key, label) in zip(axes, measures):
        for j, init in enumerate(("random", "adversarial")):
            ms, ss = [], []
            for setup in setups:
                m, s = mean_std([r[key] for r in select(init, setup)])
                ms.append(m)
                ss.append(s)
            xs = [i + (j - 0.5) * width for i in range(len(setups))]
            ax.bar(xs, ms, width, yerr=ss, color=COLORS[init], label=f"{init} init", capsize=2)
        ax.set_xticks(range(len(setups)))
        ax.set_xticklabels(setups, rotation=45, fontsize=8)
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save(fig, out, "complexity")

    # Test accuracy against R.
    if len(reps) > 1 or (reps and any(r["init"] == "random" for r in runs)):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for setup in setups:
            xs, ms, ss = [], [], []
            rnd = select("random", setup)
            if rnd:
                m, s = mean_std([r["test_acc"] for r in rnd])
                xs.append(0)
                ms.append(m)
                ss.append(s)
            for rep in reps:
                rs = select("adversarial", setup, rep)
                if rs:
                    m, s = mean_std([r["test_acc"] for r in rs])
                    xs.append(rep)
                    ms.append(m)
                    ss.append(s)
            ax.errorbar(xs, ms, yerr=ss, marker="o", capsize=3, label=setup)
        ax.set_xlabel("R (0 = random init)")
        ax.set_ylabel("final test accuracy (%)")
        ax.set_title("test accuracy against the replication factor R")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, out, "r_sweep")

    # Ablation table.
    cells, rows = [], []
    for setup in setups:
        row = []
        for init in ("random", "adversarial"):
            m, s = mean_std([r["test_acc"] for r in select(init, setup)])
            row.append("-" if math.isnan(m) else f"{m:.2f} ± {s:.2f}")
        cells.append(row)
        rows.append(setup)
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(rows) + 1))
    ax.axis("off")
    t = ax.table(cellText=cells, rowLabels=rows, colLabels=["random init", f"adversarial init (R = {R})"],
                 loc="center", cellLoc="center")
    t.scale(1, 1.4)
    ax.set_title("final test accuracy (%), mean ± std over seeds")
    save(fig, out, "ablation")
    print("figures written to", out)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
