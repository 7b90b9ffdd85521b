"""Helpers shared by the figure scripts in apps/plot/: reading a run directory and saving figures.

Each script takes the --out directory of one `minima <command>` run, reads its metrics.csv /
summary.json (and extra CSV files), and writes <name>.png and <name>.svg into that directory.
"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def run_dir():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 %s RUN_DIR" % os.path.basename(sys.argv[0]))
    return sys.argv[1]


def read_csv(path):
    """Rows of a CSV file as dicts; numeric fields converted to float."""
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out = {}
            for k, v in r.items():
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
            rows.append(out)
    return rows


def read_json(path):
    with open(path) as f:
        return json.load(f)


def save(fig, directory, name):
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(directory, name + "." + ext), dpi=130, bbox_inches="tight")
    plt.close(fig)
    print("figure: " + os.path.join(directory, name + ".png") + " (and .svg)")
