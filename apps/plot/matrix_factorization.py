"""Figure of `minima matrix-factorization` (Gunasekar et al. 2017).

Panels, each against the init scale alpha (log axis, shrinking to the right): the nuclear norm of
the solution found by gradient descent on X = U U^T (with the ground truth's, which is the minimum,
and the minimum Frobenius norm interpolant's for reference); its relative distance to the ground
truth; its effective and numerical rank. A fourth panel shows the eigenvalue spectra.
"""
from common import plt, read_csv, read_json, run_dir, save

d = run_dir()
s = read_json(d + "/summary.json")
spectra = read_csv(d + "/spectra.csv")
alphas = s["alphas"]

fig, axes = plt.subplots(1, 4, figsize=(21, 4.4))
ax = axes[0]
ax.semilogx(alphas, s["nuclear_norm"], "o-", label="GD on $UU^T$")
ax.axhline(s["ground_truth_nuclear_norm"], color="k", ls="--", label="ground truth (minimum)")
ax.axhline(s["min_frobenius_nuclear_norm"], color="tab:red", ls=":", label="min Frobenius interpolant")
ax.set_title("nuclear norm $\\|X\\|_*$")
ax.legend(fontsize=8)

ax = axes[1]
ax.loglog(alphas, s["rel_error"], "o-", label="GD on $UU^T$")
ax.axhline(s["min_frobenius_rel_error"], color="tab:red", ls=":", label="min Frobenius interpolant")
ax.set_title("$\\|X - X^*\\|_F / \\|X^*\\|_F$")
ax.legend(fontsize=8)

ax = axes[2]
ax.semilogx(alphas, s["effective_rank"], "o-", label="effective rank")
ax.semilogx(alphas, s["numerical_rank"], "s--", label="rank (eig > rank-tol x max)")
ax.axhline(s["rank"], color="k", ls="--", lw=1, label="ground truth rank")
ax.set_title("rank of the solution")
ax.legend(fontsize=8)

for ax in axes[:3]:
    ax.set_xlabel("init scale alpha ($U_0 = \\sqrt{\\alpha} I$)")
    ax.invert_xaxis()

ax = axes[3]
names = list(dict.fromkeys(r["solution"] for r in spectra))
for name in names:
    rows = [r for r in spectra if r["solution"] == name]
    style = {"ground_truth": dict(color="k", ls="--", lw=2), "min_frobenius": dict(color="tab:red", ls=":")}
    label = name if name in style else "alpha = %g" % name
    ax.semilogy([r["index"] for r in rows], [max(abs(r["eigenvalue"]), 1e-17) for r in rows],
                label=label, **style.get(name, {}))
ax.set_xlabel("index")
ax.set_title("eigenvalue magnitudes")
ax.legend(fontsize=7)
fig.suptitle("Symmetric matrix sensing: n=%d, rank %d, %d measurements for %d unknowns"
             % (s["n"], s["rank"], s["measurements"], s["unknowns"]), y=1.02)
fig.tight_layout()
save(fig, d, "matrix_factorization")
