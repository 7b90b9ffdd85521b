"""Figure of `minima randomization` (Zhang et al. 2017, Figure 1).

(a) mean training loss of each epoch against steps, one curve per randomization, for the first
seed (label corruption levels dotted, darker for more corruption); (b) steps until the training set
is fitted against the label corruption level, also as a multiple of the true labels'; (c) test
error on the true test labels against the corruption level; (d) every variant's steps to fit and
test error side by side, the pixel and image randomizations included. (b)-(d) show the mean over
seeds with the standard deviation as error bars. With --regularizers (Table 1), (b) and (c) draw a
line per explicit regularizer, the curves and bars of (a) and (d) name it, and a second figure,
regularization.png, shows Table 1: train and test accuracy of each randomization by regularizer.
"""
from common import plt, read_csv, read_json, run_dir, save

d = run_dir()
s = read_json(d + "/summary.json")
rows = read_csv(d + "/metrics.csv")
runs, variants, seeds = s["runs"], s["variants"], s["seeds"]
multi = len(seeds) > 1

fig, axes = plt.subplots(2, 2, figsize=(13, 9))
axes = axes.ravel()
named = {"true-labels": "C0", "random-labels": "C3", "shuffled-pixels": "C2", "random-pixels": "C1",
         "gaussian": "C4"}


def color(r):
    if r["kind"] in named:
        return named[r["kind"]]
    return plt.cm.Greys(0.35 + 0.6 * r["corruption"])


def all_fitted(v):
    return v["fitted"] == v["seeds"]


ax = axes[0]
for i, r in enumerate(runs):
    if r["seed"] != seeds[0]:
        continue
    sel = [m for m in rows if int(m["run"]) == i]
    ls = ":" if r["kind"] == "corrupt-labels" else ("--" if r["kind"] == "shuffled-pixels" else "-")
    if len(s.get("regularizers", ["none"])) > 1:  # Table 1's runs: the line style tells the regularizer
        ls = {"none": "-", "crop": "--", "wd": "-.", "crop+wd": ":"}[r.get("regularizer", "none")]
    ax.plot([m["step"] / 1000.0 for m in sel], [m["train_loss"] for m in sel], ls, color=color(r),
            label=r["label"])
ax.set_yscale("log")
ax.set_xlabel("thousand steps")
ax.set_ylabel("training loss (mean over the epoch's steps)")
ax.set_title("(a) learning curves" + (" (seed %d)" % seeds[0] if multi else ""))
ax.legend(fontsize=7)

regs = s.get("regularizers", ["none"])


def curve_of(reg):
    """The label-corruption variants of one regularizer, by corruption level."""
    return sorted((v for v in variants if v["corruption"] >= 0 and v.get("regularizer", "none") == reg),
                  key=lambda v: v["corruption"])


def curve_label(reg):
    return "label corruption" if len(regs) == 1 else "label corruption, " + reg


curve = [v for reg in regs for v in curve_of(reg)]
note = " (mean ± std over %d seeds)" % len(seeds) if multi else ""

ax = axes[1]
for reg in regs:
    fitted = [v for v in curve_of(reg) if all_fitted(v)]
    ax.errorbar([v["corruption"] for v in fitted], [v["steps_to_fit_mean"] / 1000.0 for v in fitted],
                yerr=[v["steps_to_fit_std"] / 1000.0 for v in fitted], fmt="o-", capsize=3, label=curve_label(reg))
if len(regs) > 1:
    ax.legend(fontsize=8)
for v in curve:
    if not all_fitted(v):
        ax.plot([v["corruption"]], [0], "rx", ms=10)
        ax.annotate("fitted %d/%d" % (v["fitted"], v["seeds"]), (v["corruption"], 0), fontsize=7)
for v in curve:
    if all_fitted(v) and "fit_time_vs_true_labels" in v:
        ax.annotate("%.1fx" % v["fit_time_vs_true_labels"], (v["corruption"], v["steps_to_fit_mean"] / 1000.0),
                    textcoords="offset points", xytext=(4, -10), fontsize=7)
ax.set_xlabel("label corruption")
ax.set_ylabel("thousand steps to fit the training set")
ax.set_title("(b) convergence slowdown" + note)
ax.set_ylim(bottom=0)

chance = 100.0 * (1 - 1.0 / s["classes"])
ax = axes[2]
for reg in regs:
    c = curve_of(reg)
    ax.errorbar([v["corruption"] for v in c], [100 - v["test_acc_mean"] for v in c],
                yerr=[v["test_acc_std"] for v in c], fmt="o-", capsize=3, label=curve_label(reg))
ax.axhline(chance, color="gray", ls="--", lw=1, label="chance")
ax.set_xlabel("label corruption")
ax.set_ylabel("test error on the true test labels (%)")
ax.set_title("(c) generalization error growth" + note)
ax.set_ylim(0, 100)
ax.legend(fontsize=8, loc="lower right")

ax = axes[3]
xs = list(range(len(variants)))
ax.bar([x - 0.2 for x in xs], [v["steps_to_fit_mean"] / 1000.0 if all_fitted(v) else 0 for v in variants], 0.4,
       yerr=[v["steps_to_fit_std"] / 1000.0 if all_fitted(v) else 0 for v in variants],
       color=[color(v) for v in variants], edgecolor="k", capsize=3)
for x, v in zip(xs, variants):
    if not all_fitted(v):
        ax.annotate("fitted %d/%d" % (v["fitted"], v["seeds"]), (x - 0.2, 0), rotation=90, fontsize=7)
ax.set_ylabel("thousand steps to fit")
ax.set_xticks(xs)
ax.set_xticklabels([v["label"].replace("corrupt-labels ", "") for v in variants], rotation=35, ha="right",
                   fontsize=8)
ax2 = ax.twinx()
ax2.errorbar([x + 0.2 for x in xs], [100 - v["test_acc_mean"] for v in variants],
             yerr=[v["test_acc_std"] for v in variants], fmt="ks", capsize=3)
ax2.axhline(chance, color="gray", ls="--", lw=1)
ax2.set_ylim(0, 100)
ax2.set_ylabel("test error (%), squares")
ax.set_title("(d) every variant: time to fit (bars) and test error (squares)")

fig.suptitle("Randomization tests (Zhang et al. 2017) on %d %s training images with %s"
             % (s["train_images"], s["dataset"], s["arch"]), y=1.0)
fig.tight_layout()
save(fig, d, "randomization")

# With --regularizers: Zhang et al.'s Table 1 as a figure, train (hatched) and test accuracy of each
# randomization under each explicit regularizer.
if len(regs) > 1:
    kinds = []
    for v in variants:
        base = v["label"].split(" with ")[0]
        if base not in kinds:
            kinds.append(base)
    fig, ax = plt.subplots(figsize=(1.2 + 2.2 * len(kinds), 4.2))
    width = 0.8 / len(regs)
    for k, reg in enumerate(regs):
        sel = [next(v for v in variants if v["label"].split(" with ")[0] == base
                    and v.get("regularizer", "none") == reg) for base in kinds]
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(kinds))]
        ax.bar(xs, [v["train_acc_mean"] for v in sel], width * 0.9, color="C%d" % k, alpha=0.35, hatch="//",
               edgecolor="C%d" % k)
        ax.bar(xs, [v["test_acc_mean"] for v in sel], width * 0.9, yerr=[v["test_acc_std"] for v in sel],
               color="C%d" % k, capsize=2, label=reg)
    ax.axhline(100.0 / s["classes"], color="gray", ls="--", lw=1)
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels(kinds, fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%): train hatched, test solid")
    ax.legend(title="regularizer", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Explicit regularization (Zhang et al. 2017, Table 1)" + note, fontsize=10)
    fig.tight_layout()
    save(fig, d, "regularization")
