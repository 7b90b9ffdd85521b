#!/usr/bin/env python3
"""Edge values for every flag of every minima command, one flag at a time.

usage: scripts/fuzz-flags.py MINIMA [--commands train,eval,"bench cpu",...] [--timeout S] [--jobs J]

MINIMA is best a sanitized build (cmake -DMINIMA_SANITIZE=ON: AddressSanitizer + UBSan). For each
command the script starts from a small configuration that runs in seconds, reads the command's
flags from its --help (so a new flag is covered without editing this file), and runs the command
once per edge value of each flag: for integers 0, -1, 2^31, 2^63 - 1, -2^63, 2^63 and malformed
text; for numbers -0, nan, inf, 1e308, 1e309, denormals; for lists empty items, repeats and huge
values; for names empty, unknown and device strings. Every run must end in success or in an
`error:` line with exit status 1 or 2, without a sanitizer report. A run still going after
--timeout seconds is a finding too, unless the flag was given a count of 2^31 or more, a list of a
dozen values, or 0 where its help gives 0 a meaning: `--epochs 2147483648` and `--subset 0` (all
images) are valid, long runs. Those are only counted. Exits 1 when anything was found.

Needs dataset-fashion-mnist. A sanitized build takes about 50 minutes on two cores for all
commands (--jobs 2), `bench cpu`, `bench data` and `bench train` included (`bench ops` needs a GPU).
"""
import argparse
import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

# A configuration of each command that succeeds in seconds on a sanitized build. {w} and {w2} are
# two weights files of the same network, written by `train` before the runs.
BASES = {
    "train": "--arch mlp --subset 256 --epochs 1 --batch 64 --threads 1",
    "adversarial-init": "--subset 40 --replication 2 --seeds 0 --setups vanilla --epochs 2 --adv-epochs 2 "
                        "--no-plot --threads 1",
    "randomization": "--subset 100 --variants true-labels,gaussian --corruption 0 --epochs 2 --no-plot --threads 1",
    "memorize": "--n 200 --sgd-n 50 --widths 2 --epochs 2 --no-plot",
    "min-norm": "--n 10 --d 20 --iters 20 --sgd-batches 1,5 --no-plot",
    "max-margin": "--iters 1000 --no-plot",
    "toy2d": "--repeats 1 --per-class 10 --eval-per-class 100 --hidden 10 --epochs 20 --pre-epochs 50 --grid 20 "
             "--no-plot",
    "matrix-factorization": "--n 10 --rank 2 --measurements 40 --alphas 1e-2 --max-iters 100 --no-plot",
    "models": "--in 1x28x28 --arch mlp",
    "data": "",
    "eval": "--weights {w} --batch 500",
    "compare": "--a {w} --b {w2}",
    "inspect": "--file {w}",
    "bench cpu": "--reps 1 --only gemv,reduce --python ''",
    "bench data": "--samples 256 --epochs 1 --step-arch none",
    "bench train": "--device cpu --arch mlp --in 1x28x28 --batch 8 --warmup 0 --iters 1 --torch off",
}
# Commands without --out; the others get a fresh one per run.
NO_OUT = {"models", "data", "eval", "compare", "inspect", "bench cpu", "bench data", "bench train"}
# Flags whose values are paths or mode switches, covered by the file fuzzing or by the tests.
SKIP = {"help", "out", "resume", "data-dir", "cache-dir", "init", "weights", "a", "b", "file", "data", "csv",
        "python", "torch-script"}

BIG = ["2147483648", "4294967297", "9223372036854775807"]
VALUES = {
    "INT": ["0", "-1", "1", *BIG, "-9223372036854775808", "9223372036854775808", "1.5", "abc", "", "1e3", "0x10",
            " 3", "3 ", "+2", "007"],
    "NUM": ["0", "-0", "-1", "nan", "inf", "-inf", "1e308", "1e309", "4.9e-324", "1e-300", "1000000", "abc", "",
            "1,2", "0x1p3"],
    "STR": ["", "bogus", "a b", "-1", "cuda:99", "cuda:-1", "cuda:", "cpu:0"],
    "LIST": ["", ",", "0,0", "-1", "nan", "inf", "9223372036854775807", "1e400", "a,b", "0,", "0.5", "1e-400",
             "1,2,3,4,5,6,7,8,9,10,11,12"],
}


def expected_long(value, help_text):
    """A count this large, a dozen list items, or 0 where the help gives 0 a meaning ("0: all")
    may run for hours."""
    return value in BIG or (value is not None and value.count(",") >= 10) or (value == "0" and "0:" in help_text)


def flags_of(binary, command, env):
    out = subprocess.run([binary, *command.split(), "--help"], capture_output=True, text=True, env=env).stdout
    found = []
    for line in out.splitlines():
        # "  --name KIND   help", KIND one of INT, NUM, STR, N,N,.. (a list) or none (a switch)
        m = re.match(r"  --([a-z0-9-]+)(?: (INT|NUM|STR|[A-Z],[A-Z],\.\.))?\s{2,}(\S.*)", line)
        if m and m.group(1) not in SKIP:
            kind = m.group(2)
            found.append((m.group(1), kind if kind in ("INT", "NUM", "STR") or kind is None else "LIST", m.group(3)))
    if not found:
        sys.exit(f"error: `minima {command} --help` lists no flags")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("minima", help="the minima binary (best a -DMINIMA_SANITIZE=ON build)")
    ap.add_argument("--commands", default=",".join(BASES), help="comma-separated, from: " + ", ".join(BASES))
    ap.add_argument("--timeout", type=float, default=60, help="seconds a run may take (default 60)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    a = ap.parse_args()
    chosen = a.commands.split(",")
    unknown = [c for c in chosen if c not in BASES]
    if unknown:
        sys.exit(f"error: unknown command {', '.join(unknown)} (expected {', '.join(BASES)})")
    if a.jobs < 1 or a.timeout <= 0:
        sys.exit("error: --jobs must be at least 1 and --timeout positive")
    binary = os.path.abspath(a.minima)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        sys.exit(f"error: {a.minima} is not an executable minima binary")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1", OMP_NUM_THREADS="1")
    root = tempfile.mkdtemp(prefix="minima-flags-")
    weights = {}
    for name, seed in (("w", "0"), ("w2", "1")):
        out = os.path.join(root, name)
        p = subprocess.run([binary, "train", "--arch", "mlp-bn", "--subset", "256", "--epochs", "1", "--seed", seed,
                            "--threads", "1", "--out", out], capture_output=True, text=True, env=env)
        if p.returncode != 0:
            sys.exit(f"error: the weights for eval, compare and inspect could not be trained:\n{p.stderr[-2000:]}")
        weights[name] = os.path.join(out, "final.safetensors")

    jobs = []
    for command in chosen:
        base = shlex.split(BASES[command].format(**weights))
        for flag, kind, help_text in flags_of(binary, command, env):
            for value in VALUES[kind] if kind else [None]:
                args = list(base)
                if "--" + flag in args:  # the fuzzed value replaces the base's
                    i = args.index("--" + flag)
                    del args[i:i + 2]
                args += ["--" + flag] + ([] if value is None else [value])
                jobs.append((command, args, flag, value, help_text))

    def run(job):
        command, args, flag, value, help_text = job
        full = [binary, *command.split()] + args
        out = None
        if command not in NO_OUT:
            out = tempfile.mkdtemp(dir=root)
            os.rmdir(out)  # a fresh --out that does not exist yet
            full += ["--out", out]
        try:
            p = subprocess.run(full, capture_output=True, text=True, timeout=a.timeout, env=env, errors="replace")
        except subprocess.TimeoutExpired:
            what = "long" if expected_long(value, help_text) else f"no answer within {a.timeout:g} s"
            return job, full, what, ""
        finally:
            if out:
                shutil.rmtree(out, ignore_errors=True)
        text = p.stdout + p.stderr
        # (ASan's "WARNING: ... failed to allocate" before minima's own out-of-memory error is no finding)
        if any(s in text for s in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")):
            return job, full, "sanitizer report", text
        if p.returncode not in (0, 1, 2):
            return job, full, f"exit status {p.returncode}", text
        # compare exits 1 with no error: when the two files differ, which is its answer
        if p.returncode != 0 and "error:" not in text and not (command == "compare" and p.returncode == 1):
            return job, full, "failed without an error: line", text
        return job, full, None, text

    found, long_runs = [], []
    try:
        with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
            for (command, _, flag, value, _), full, what, text in pool.map(run, jobs):
                tag = f"{command} --{flag}" + ("" if value is None else f" {value!r}")
                if what == "long":
                    long_runs.append(tag)
                elif what:
                    found.append((tag, what))
                    print(f"FOUND {tag}: {what}\n  {' '.join(full)}\n{text[-2000:]}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{len(jobs)} runs, {len(found)} found, {len(long_runs)} long runs stopped after {a.timeout:g} s (counts of "
          "2^31 or more, or 0 meaning all: expected)")
    for tag, what in found:
        print(f"  {tag}: {what}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
