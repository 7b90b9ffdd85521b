"""Figure of `minima memorize` (Zhang et al. 2017, Theorem 1).

Left: final training accuracy on random labels of two-layer ReLU networks trained by SGD, against
their width, with the width of the explicit construction (one hidden unit per point) marked; right:
the same against the number of weights (the construction needs only 2n + d). The SGD training
curves are inset as accuracy against epoch.
"""
from common import plt, read_csv, read_json, run_dir, save

d = run_dir()
s = read_json(d + "/summary.json")
rows = read_csv(d + "/metrics.csv")
sgd = s["sgd"]
c_all = s["construction"]
c = s.get("construction_on_sgd_subset", c_all)

fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
for ax, key, xlabel in ((axes[0], "width", "hidden width"), (axes[1], "params", "number of weights")):
    xs = [r[key] for r in sgd]
    ax.semilogx(xs, [100 * r["train_acc"] for r in sgd], "o-", label="SGD, %d epochs max" % s["sgd_epochs"])
    cx = c["width"] if key == "width" else c["weights"]
    ax.semilogx([cx], [100 * c["train_acc"]], "r*", ms=16,
                label="construction (width n = %d, %d weights)" % (c["width"], c["weights"]))
    ax.axvline(cx, color="r", ls=":", lw=1)
    ax.axhline(10, color="gray", ls="--", lw=1, label="chance (10 classes)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training accuracy on random labels (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="center right")
axes[0].set_title("n = %d random labels: accuracy vs width" % s["sgd_n"])
axes[1].set_title("... vs number of weights")

ax = axes[2]
for r in sgd:
    sel = [m for m in rows if m["width"] == r["width"]]
    ax.plot([m["epoch"] for m in sel], [100 * m["train_acc"] for m in sel], label="width %d" % r["width"])
ax.set_xlabel("epoch")
ax.set_ylabel("training accuracy (%)")
ax.set_title("SGD training curves")
ax.legend(fontsize=7)
fig.suptitle("Memorizing random labels of Fashion-MNIST images; the construction also fits n = %d "
             "images exactly (%.0f%%, max |f(x) - y| = %.1e)"
             % (c_all["n"], 100 * c_all["train_acc"], c_all["max_abs_error"]), y=1.02)
fig.tight_layout()
save(fig, d, "memorize")
