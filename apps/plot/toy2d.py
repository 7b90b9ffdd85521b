"""Figure of `minima toy2d` (Liu et al. 2020's 2-D toy): the decision boundaries of the three runs.

Each panel shows p(x) of the trained MLP (background), its decision boundary p = 0.5 (black), the
training points (filled) and the test points (hollow); the titles carry train/test accuracy and the
boundary length; "expected" is the accuracy on 10,000 fresh points (the test accuracy without
the noise of a 100-point test set). A fourth panel shows the random labels the adversarial init was fitted to.
"""
from common import plt, read_csv, read_json, run_dir, save

d = run_dir()
grid = read_csv(d + "/grid.csv")
pts = read_csv(d + "/points.csv")
summary = read_json(d + "/summary.json")
first = summary["per_seed"][0]
x0, x1, y0, y1 = summary["grid"]

xs = sorted(set(r["x1"] for r in grid))
ys = sorted(set(r["x2"] for r in grid))
G = len(xs)


def field(key):
    Z = [[0.0] * G for _ in ys]
    for k, r in enumerate(grid):
        Z[k // G][k % G] = r[key]
    return Z


def scatter(ax, split, hollow):
    for label, c in ((0, "tab:blue"), (1, "tab:red")):
        sel = [p for p in pts if p["split"] == split and p["label"] == label]
        ax.scatter([p["x1"] for p in sel], [p["x2"] for p in sel], s=16, lw=1,
                   facecolors="none" if hollow else c, edgecolors=c)


runs = [("p_a", "a_random_init", "(a) random init, vanilla SGD"),
        ("p_b", "b_adversarial_init", "(b) adversarial init, vanilla SGD"),
        ("p_c", "c_adversarial_init_regularized", "(c) adversarial init, DA + momentum + WD")]
fig, axes = plt.subplots(1, 4, figsize=(20, 5.2))
for ax, (key, name, title) in zip(axes, runs):
    Z = field(key)
    ax.contourf(xs, ys, Z, levels=20, cmap="RdBu_r", vmin=0, vmax=1, alpha=0.55)
    ax.contour(xs, ys, Z, levels=[0.5], colors="k", linewidths=1.3)
    scatter(ax, "train", False)
    scatter(ax, "test", True)
    r = first[name]
    ax.set_title("%s\ntrain %.0f%%, test %.0f%% (expected %.1f%%), boundary length %.2f"
                 % (title, 100 * r["train_acc"], 100 * r["test_acc"], 100 * r["expected_acc"],
                    r["boundary_length"]), fontsize=10)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
ax = axes[3]
scatter(ax, "train_random_label", False)
ax.set_title("adversarial init: the same training points\nwith random labels (fitted to %.0f%%)"
             % (100 * first["pretrain_random_label_acc"]), fontsize=10)
ax.set_xlim(x0, x1)
ax.set_ylim(y0, y1)
ax.set_aspect("equal")
fig.suptitle("MLP 2-100-100-1 on two Gaussian classes (filled: train, hollow: test; seed %d)" % first["seed"], y=1.03)
fig.tight_layout()
save(fig, d, "toy2d")
