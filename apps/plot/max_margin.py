"""Figure of `minima max-margin` (Soudry et al. 2018, Figures 1 and 2): one row per data set.

Columns: the data with the L2 max-margin separator (black) and the final separators of GD, momentum
and Adam; ||w(t)|| (log t axis: grows like log t); the loss (falls like 1/t); the angle between w(t)
and the max-margin direction; the gap between the max margin and w(t)'s normalized margin.
"""
import math

from common import plt, read_csv, read_json, run_dir, save

d = run_dir()
rows = read_csv(d + "/metrics.csv")
pts = read_csv(d + "/data.csv")
summary = read_json(d + "/summary.json")
datasets = list(dict.fromkeys(r["dataset"] for r in rows))
methods = ["gd", "momentum", "adam"]
colors = {"gd": "tab:blue", "momentum": "tab:green", "adam": "tab:red"}

fig, axes = plt.subplots(len(datasets), 5, figsize=(22, 4.2 * len(datasets)), squeeze=False)
for row, ds in enumerate(datasets):
    info = summary["datasets"][ds]
    ax = axes[row][0]
    P = [p for p in pts if p["dataset"] == ds]
    for label, marker, c in ((1, "+", "tab:orange"), (-1, "o", "tab:purple")):
        sel = [p for p in P if p["label"] == label]
        ax.scatter([p["x1"] for p in sel], [p["x2"] for p in sel], marker=marker, c=c, s=45,
                   facecolors=c if marker == "+" else "none", label="y = %+d" % label)
    sv = [p for p in P if p["on_margin"] == 1]
    ax.scatter([p["x1"] for p in sv], [p["x2"] for p in sv], s=160, facecolors="none", edgecolors="k",
               lw=0.8, label="on the margin")
    xs = [p["x1"] for p in P]
    ys = [p["x2"] for p in P]
    lo, hi = min(xs) - 0.5, max(xs) + 0.5
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(ys) - 0.1 * (max(ys) - min(ys)), max(ys) + 0.1 * (max(ys) - min(ys)))

    def separator(w, **kw):  # the line w . x = 0 through the origin
        if abs(w[1]) > 1e-12:
            ax.plot([lo, hi], [-w[0] * lo / w[1], -w[0] * hi / w[1]], **kw)
        else:
            ax.axvline(0, **kw)

    separator(info["svm_w"], color="k", lw=2, label="L2 max margin (SVM)")
    for m in methods:
        separator(info["final"][m]["w"], color=colors[m], ls="--", lw=1.2, label=m + " (final)")
    ax.set_title("%s: w_hat = (%.4g, %.4g)" % (ds, info["svm_w"][0], info["svm_w"][1]))
    ax.legend(fontsize=7, loc="lower right")

    for col, key, title, logy in ((1, "norm", "$\\|w(t)\\|$", False), (2, "loss", "loss", True),
                                  (3, "angle_gap", "angle gap (rad)", True),
                                  (4, "margin_gap", "margin gap", True)):
        ax = axes[row][col]
        for m in methods:
            sel = [r for r in rows if r["dataset"] == ds and r["method"] == m and r["iter"] >= 1
                   and not math.isnan(r[key])]
            ax.plot([r["iter"] for r in sel], [max(r[key], 1e-300) for r in sel], color=colors[m], label=m)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("iteration t")
        ax.set_title(title)
        if col == 1:
            ax.legend(fontsize=8)
fig.suptitle("Logistic regression on separable data from w = 0 (%d iterations)" % summary["iters"])
fig.tight_layout()
save(fig, d, "max_margin")
