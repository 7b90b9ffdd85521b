"""Figure of `minima randomization` (Zhang et al. 2017, Figure 1).

(a) mean training loss of each epoch against steps, one curve per randomization (label
corruption levels dotted, darker for more corruption); (b) steps until the training set is fitted
against the label corruption level, also as a multiple of the true-label run's; (c) test error on
the true test labels against the corruption level; (d) every run's steps to fit and test error
side by side, the pixel and image randomizations included.
"""
from common import plt, read_csv, read_json, run_dir, save

d = run_dir()
s = read_json(d + "/summary.json")
rows = read_csv(d + "/metrics.csv")
runs = s["runs"]

fig, axes = plt.subplots(2, 2, figsize=(13, 9))
axes = axes.ravel()
named = {"true-labels": "C0", "random-labels": "C3", "shuffled-pixels": "C2", "random-pixels": "C1",
         "gaussian": "C4"}


def color(r):
    if r["kind"] in named:
        return named[r["kind"]]
    return plt.cm.Greys(0.35 + 0.6 * r["corruption"])


ax = axes[0]
for i, r in enumerate(runs):
    sel = [m for m in rows if int(m["run"]) == i]
    ls = ":" if r["kind"] == "corrupt-labels" else ("--" if r["kind"] == "shuffled-pixels" else "-")
    ax.plot([m["step"] / 1000.0 for m in sel], [m["train_loss"] for m in sel], ls, color=color(r),
            label=r["label"])
ax.set_yscale("log")
ax.set_xlabel("thousand steps")
ax.set_ylabel("training loss (mean over the epoch's steps)")
ax.set_title("(a) learning curves")
ax.legend(fontsize=7)

curve = sorted((r for r in runs if r["corruption"] >= 0), key=lambda r: r["corruption"])
others = [r for r in runs if r["corruption"] < 0]

ax = axes[1]
fitted = [r for r in curve if r["fitted"]]
ax.plot([r["corruption"] for r in fitted], [r["steps_to_fit"] / 1000.0 for r in fitted], "o-",
        label="label corruption")
for r in curve:
    if not r["fitted"]:
        ax.plot([r["corruption"]], [r["steps"] / 1000.0], "rx", ms=10)
        ax.annotate("not fitted", (r["corruption"], r["steps"] / 1000.0), fontsize=7)
base = [r for r in runs if r["kind"] == "true-labels" and r["fitted"]]
if base:
    for r in fitted:
        ax.annotate("%.1fx" % (r["steps_to_fit"] / base[0]["steps_to_fit"]),
                    (r["corruption"], r["steps_to_fit"] / 1000.0), textcoords="offset points", xytext=(4, -10),
                    fontsize=7)
ax.set_xlabel("label corruption")
ax.set_ylabel("thousand steps to fit the training set")
ax.set_title("(b) convergence slowdown")
ax.set_ylim(bottom=0)

chance = 100.0 * (1 - 1.0 / s["classes"])
ax = axes[2]
ax.plot([r["corruption"] for r in curve], [100 - r["test_acc"] for r in curve], "o-", label="label corruption")
ax.axhline(chance, color="gray", ls="--", lw=1, label="chance")
ax.set_xlabel("label corruption")
ax.set_ylabel("test error on the true test labels (%)")
ax.set_title("(c) generalization error growth")
ax.set_ylim(0, 100)
ax.legend(fontsize=8, loc="lower right")

ax = axes[3]
xs = range(len(runs))
ax.bar([x - 0.2 for x in xs], [(r["steps_to_fit"] if r["fitted"] else r["steps"]) / 1000.0 for r in runs], 0.4,
       color=[color(r) for r in runs], edgecolor="k", label="thousand steps to fit (hatched: not fitted)")
for x, r in zip(xs, runs):
    if not r["fitted"]:
        ax.bar([x - 0.2], [r["steps"] / 1000.0], 0.4, fill=False, hatch="//")
ax.set_ylabel("thousand steps to fit")
ax.set_xticks(list(xs))
ax.set_xticklabels([r["label"].replace("corrupt-labels ", "") for r in runs], rotation=35, ha="right", fontsize=8)
ax2 = ax.twinx()
ax2.plot([x + 0.2 for x in xs], [100 - r["test_acc"] for r in runs], "ks", label="test error (%)")
ax2.axhline(chance, color="gray", ls="--", lw=1)
ax2.set_ylim(0, 100)
ax2.set_ylabel("test error (%), squares")
ax.set_title("(d) every run: time to fit (bars) and test error (squares)")

fig.suptitle("Randomization tests (Zhang et al. 2017) on %d %s training images with %s"
             % (s["train_images"], s["dataset"], s["arch"]), y=1.0)
fig.tight_layout()
save(fig, d, "randomization")
