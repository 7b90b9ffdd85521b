"""Figure of `minima min-norm`: distance of GD / momentum / SGD iterates to the two predictions.

Left: from w0 = 0, relative distance to the minimum-norm interpolant X^+ y.
Right: from a random w0, relative distance to X^+ y + (I - X^+ X) w0 (solid) and to X^+ y
(dashed, which levels off at ||(I - X^+ X) w0|| / ||X^+ y||, the null-space part GD never touches).
"""
from common import plt, read_csv, read_json, run_dir, save

d = run_dir()
rows = read_csv(d + "/metrics.csv")
summary = read_json(d + "/summary.json")
methods = list(dict.fromkeys(r["method"] for r in rows))
colors = dict(zip(methods, plt.rcParams["axes.prop_cycle"].by_key()["color"]))


def series(method, init, key):
    sel = [r for r in rows if r["method"] == method and r["init"] == init]
    return [r["pass"] for r in sel], [max(r[key], 1e-17) for r in sel]


fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
ax = axes[0]
for m in methods:
    x, y = series(m, "zero", "rel_dist_min_norm")
    ax.semilogy(x, y, color=colors[m], label=m)
ax.set_title("from $w_0 = 0$: $\\|w - X^+y\\| / \\|X^+y\\|$")
ax.set_xlabel("passes over the data (GD iterations)")
ax.set_ylabel("relative distance")
ax.legend()

ax = axes[1]
for m in methods:
    x, y = series(m, "w0", "rel_dist_prediction")
    ax.semilogy(x, y, color=colors[m], label=m + ": to $X^+y + (I - X^+X)w_0$")
    x, y = series(m, "w0", "rel_dist_min_norm")
    ax.semilogy(x, y, color=colors[m], ls="--", lw=1)
ax.axhline(summary["predicted_gap_from_w0"], color="k", ls=":", lw=1,
           label="$\\|(I - X^+X)w_0\\| / \\|X^+y\\|$ (dashed: to $X^+y$)")
ax.set_title("from a random $w_0$")
ax.set_xlabel("passes over the data (GD iterations)")
ax.legend(fontsize=8)
fig.suptitle("Least squares, n=%d < d=%d: GD keeps the null-space part of its start"
             % (summary["n"], summary["d"]))
save(fig, d, "min_norm")
