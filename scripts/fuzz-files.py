#!/usr/bin/env python3
"""Mutation fuzzing of every file minima reads: the datasets' files and caches, and safetensors.

usage: scripts/fuzz-files.py MINIMA [--iterations N] [--targets idx,cifar10,...] [--seed S] [--keep DIR]

MINIMA is best a sanitized build (cmake -DMINIMA_SANITIZE=ON: AddressSanitizer + UBSan). Each
target writes a small sound input in the exact on-disk format, checks that minima reads it, then
N times damages one file (bit flips, a cut, a copied block, random bytes, a 32-bit field set to an
edge value; for safetensors also edits of the JSON header) and runs minima on it. Every run must
end in success or in an `error:` line with exit status 1 or 2, within its time limit, and without
a sanitizer report; anything else is printed, and with --keep the damaged input is kept. Exits 1
when anything was found.

  idx           fashion-mnist (IDX, one file gzipped): minima data
  cifar10       CIFAR-10 binary batches: minima data
  cifar100      CIFAR-100 binary files: minima data
  cinic         CINIC-10 PNG folders and the pixel and statistics caches: minima data
  imagenet      Restricted ImageNet JPEG folders (baseline and progressive) and caches: minima data
  safetensors   a checkpoint and a weights file: inspect, inspect --json, compare, eval, train
                --resume and train --init (needs dataset-fashion-mnist)
  runs          a finished adversarial-init run and a halted train run, resumed after one of their
                files (config.json, summary.json, metrics.csv, results.md, weights, checkpoint) is
                damaged (needs dataset-fashion-mnist)

Needs python3-numpy and python3-pil. A sanitized build takes about 1 s a run.
"""
import argparse
import gzip
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image


class Fuzzer:
    def __init__(self, binary, iterations, seed, keep):
        self.bin, self.n, self.keep = binary, iterations, keep
        self.rng = random.Random(seed)
        self.root = tempfile.mkdtemp(prefix="minima-fuzz-")
        self.found = []
        self.runs = 0
        self.env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1",
                        OMP_NUM_THREADS="2")

    # ---- running minima -------------------------------------------------------------------------
    def run(self, args, tag, timeout=120, keep=None):
        """Runs minima; records a crash, a sanitizer report, a hang or an exit without `error:`."""
        self.runs += 1
        try:
            p = subprocess.run([self.bin] + args, capture_output=True, text=True, timeout=timeout, env=self.env,
                               errors="replace")
        except subprocess.TimeoutExpired:
            return self.report(tag, f"no answer within {timeout} s", args, "", keep)
        out = p.stdout + p.stderr
        # (ASan's "WARNING: ... failed to allocate" before minima's own out-of-memory error is no finding)
        if any(s in out for s in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")):
            self.report(tag, "sanitizer report", args, out, keep)
        elif p.returncode not in (0, 1, 2):
            self.report(tag, f"exit status {p.returncode}", args, out, keep)
        elif p.returncode != 0 and "error:" not in out:
            self.report(tag, "failed without an error: line", args, out, keep)
        return p

    def report(self, tag, what, args, out, keep):
        self.found.append((tag, what))
        print(f"FOUND {tag}: {what}\n  minima {' '.join(args)}\n{out[-2000:]}", flush=True)
        if self.keep and keep:
            dest = os.path.join(self.keep, f"{len(self.found)}-{tag.replace('/', '_')}")
            (shutil.copytree if os.path.isdir(keep) else shutil.copy)(keep, dest)
            print(f"  input kept in {dest}", flush=True)

    # ---- damage ---------------------------------------------------------------------------------
    EDGE = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 3073, 3074, 28, 60000]

    def damage(self, b):
        r, b = self.rng, bytearray(b)
        if not b:
            return bytes([r.randrange(256)])
        k = r.randrange(6)
        if k == 0:  # bit flips
            for _ in range(r.randint(1, 8)):
                b[r.randrange(len(b))] ^= 1 << r.randrange(8)
        elif k == 1:  # cut
            b = b[:r.randrange(len(b))]
        elif k == 2:  # a 32-bit field set to an edge value
            i = r.randrange(max(1, len(b) - 4))
            b[i:i + 4] = struct.pack(r.choice([">I", "<I"]), r.choice(self.EDGE))
        elif k == 3:  # the header region
            for _ in range(r.randint(1, 4)):
                b[r.randrange(min(len(b), 64))] = r.randrange(256)
        elif k == 4:  # a block copied elsewhere
            i, j = r.randrange(len(b)), r.randrange(len(b))
            b[i:i] = b[j:j + r.randint(1, 64)]
        else:  # random bytes
            for _ in range(r.randint(1, 32)):
                b[r.randrange(len(b))] = r.randrange(256)
        return bytes(b)

    def damage_header(self, b):
        """Edits the JSON header of a safetensors file, keeping its length field right."""
        r = self.rng
        n = struct.unpack("<Q", b[:8])[0]
        h, body = json.loads(b[8:8 + n]), b[8 + n:]
        keys = [k for k in h if k != "__metadata__"]
        k = r.choice(keys) if keys else None
        m = r.randrange(9)
        if m == 0 and k:
            h[k]["data_offsets"][r.randrange(2)] = r.choice([-1, 0, 2**63 - 1, 2**64 - 1, 2**53, 7, len(body) + 4])
        elif m == 1 and k:
            h[k]["shape"] = r.choice([[], [0], [-1], [2**62, 2**62], [1] * 20, [3, 2**40], [1.5]])
        elif m == 2 and k:
            h[k]["dtype"] = r.choice(["F16", "F64", "BF16", "I64", "U8", "BOOL", "X", "", 5])
        elif m == 3 and "__metadata__" in h:
            mk = r.choice(list(h["__metadata__"]))
            h["__metadata__"][mk] = r.choice(["", "nan", "-1", "1e400", "{", "999999999999999999999", "[1,2",
                                              "x" * 5000, "mlp", "resnet18", "3,32,32", "0"])
        elif m == 4 and k:
            del h[k]
        elif m == 5 and k:
            h[k + "x"] = h[k]
        elif m == 6:
            h = r.choice([[], 5, "s", None, {"a": 1}])
        elif m == 7 and "__metadata__" in h:
            h["__metadata__"] = r.choice([5, [], None, {"a": 5}])
        else:  # one character of the text
            t = bytearray(json.dumps(h).encode())
            t[r.randrange(len(t))] = r.randrange(32, 127)
            return struct.pack("<Q", len(t)) + bytes(t) + body
        t = json.dumps(h).encode()
        return struct.pack("<Q", len(t)) + t + body

    # ---- sound inputs ---------------------------------------------------------------------------
    @staticmethod
    def write(path, data):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    @staticmethod
    def files(d):
        return sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs)

    def make_idx(self, d):
        r = np.random.RandomState(1)
        def idx(dims, values):
            return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", x) for x in dims) + values.tobytes()
        for prefix, n in (("train", 20), ("t10k", 10)):
            self.write(f"{d}/{prefix}-images-idx3-ubyte.gz",
                       gzip.compress(idx([n, 28, 28], r.randint(0, 256, n * 784).astype(np.uint8))))
            self.write(f"{d}/{prefix}-labels-idx1-ubyte", idx([n], r.randint(0, 10, n).astype(np.uint8)))

    def make_cifar10(self, d):
        r = np.random.RandomState(2)
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            self.write(f"{d}/{name}", b"".join(bytes([r.randint(10)]) + r.randint(0, 256, 3072).astype(np.uint8).tobytes()
                                               for _ in range(3)))
        self.write(f"{d}/batches.meta.txt", b"".join(b"class%d\n" % i for i in range(10)))

    def make_cifar100(self, d):
        r = np.random.RandomState(3)
        for name, n in (("train.bin", 10), ("test.bin", 2)):
            self.write(f"{d}/{name}", b"".join(bytes([r.randint(20), r.randint(100)]) +
                                               r.randint(0, 256, 3072).astype(np.uint8).tobytes() for _ in range(n)))

    @staticmethod
    def image(w, h, seed, fmt, **opts):
        f = io.BytesIO()
        Image.fromarray(np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)).save(f, format=fmt, **opts)
        return f.getvalue()

    def make_cinic(self, d):
        s = 0
        for split in ("train", "valid", "test"):
            for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"):
                s += 1
                self.write(f"{d}/{split}/{c}/img{s}.png", self.image(32, 32, s, "PNG"))

    # The synsets' class-index ranges of Restricted ImageNet's nine superclasses.
    RANGES = [(151, 268), (281, 285), (30, 32), (33, 37), (80, 100), (365, 382), (389, 397), (118, 121), (300, 319)]

    def make_imagenet(self, d):
        self.write(f"{d}/LOC_synset_mapping.txt", "".join("n%08d some class\n" % k for k in range(1000)).encode())
        s = 0
        for split in ("train", "val"):
            for lo, hi in self.RANGES:
                for k in range(lo, hi + 1):
                    os.makedirs(f"{d}/{split}/n{k:08d}", exist_ok=True)
                s += 1
                self.write(f"{d}/{split}/n{lo:08d}/a{s}.JPEG",
                           self.image(40 + s, 30 + s, s, "JPEG", quality=90, progressive=s % 2 == 0))

    # ---- targets --------------------------------------------------------------------------------
    def dataset(self, name, make, folder=False, extra=()):
        base = os.path.join(self.root, name)
        make(base)
        def args(d):
            return ["data", "--dataset", name, "--data-dir", d] + (
                ["--cache-dir", d + "-cache", "--threads", "2"] if folder else []) + list(extra)
        p = self.run(args(base), name + "/sound input")
        if p is None or p.returncode != 0:
            sys.exit(f"error: minima does not read the sound {name} input; nothing to fuzz")
        sound, caches = self.files(base), self.files(base + "-cache") if folder else []
        for i in range(self.n):
            d = os.path.join(self.root, f"{name}-{i}")
            shutil.copytree(base, d)
            if caches and self.rng.random() < 0.4:  # a damaged cache, beside sound files
                shutil.copytree(base + "-cache", d + "-cache")
                victim = self.rng.choice(caches).replace(base + "-cache", d + "-cache")
            else:
                victim = self.rng.choice(sound).replace(base, d)
            with open(victim, "rb") as f:
                data = f.read()
            if victim.endswith(".gz") and self.rng.random() < 0.5:  # damage what the gzip holds
                data = gzip.compress(self.damage(gzip.decompress(data)))
            else:
                data = self.damage(data)
            self.write(victim, data)
            self.run(args(d), f"{name}/{os.path.basename(victim)}", keep=d)
            shutil.rmtree(d)
            shutil.rmtree(d + "-cache", ignore_errors=True)

    def run_dirs(self):
        """A finished adversarial-init run and a halted train run, resumed after one of their files
        (config, summaries, metrics, weights, checkpoint) is damaged."""
        base = os.path.join(self.root, "runs")
        adv = ["adversarial-init", "--subset", "50", "--replication", "1", "--seeds", "0", "--epochs", "2",
               "--adv-epochs", "5", "--setups", "vanilla", "--no-plot", "--threads", "2"]
        train = ["train", "--arch", "mlp", "--subset", "128", "--batch", "64", "--epochs", "2", "--checkpoint-every", "0",
                 "--threads", "2"]
        self.run(adv + ["--out", base + "/adv"], "runs/sound adversarial-init", timeout=600)
        self.run(train + ["--halt-after", "1", "--out", base + "/train"], "runs/sound train", timeout=600)
        for kind in ("adv", "train"):
            if not os.path.isfile(f"{base}/{kind}/config.json"):
                sys.exit(f"error: the sound {kind} run left no config.json (is dataset-fashion-mnist installed?)")
        files = [f for f in self.files(base) if not f.endswith(".lock")]
        for i in range(self.n):
            victim = self.rng.choice(files)
            kind = os.path.relpath(victim, base).split(os.sep)[0]
            d = os.path.join(self.root, f"runs-{i}")
            shutil.copytree(base, d)
            with open(victim, "rb") as f:
                data = f.read()
            self.write(victim.replace(base, d), self.damage(data))
            args = (adv if kind == "adv" else train) + ["--out", f"{d}/{kind}", "--resume"]
            self.run(args, f"runs/{kind}/{os.path.relpath(victim, base + '/' + kind)}", timeout=600, keep=d)
            shutil.rmtree(d)

    def safetensors(self):
        base = os.path.join(self.root, "st")
        common = ["--arch", "mlp-bn", "--subset", "256", "--batch", "64", "--momentum", "0.9", "--threads", "2"]
        # A run halted after one of two epochs leaves its checkpoint; a smallcnn run its weights.
        self.run(["train"] + common + ["--epochs", "2", "--halt-after", "1", "--checkpoint-every", "0",
                                       "--out", base + "/run"], "safetensors/sound run", timeout=600)
        self.run(["train", "--arch", "smallcnn", "--subset", "128", "--epochs", "1", "--batch", "64", "--threads", "2",
                  "--out", base + "/weights"], "safetensors/sound weights", timeout=600)
        ckpt, weights = base + "/run/checkpoint.safetensors", base + "/weights/final.safetensors"
        if not (os.path.isfile(ckpt) and os.path.isfile(weights)):
            sys.exit("error: the sound runs left no checkpoint or weights (is dataset-fashion-mnist installed?)")
        for i in range(self.n):
            src = self.rng.choice([ckpt, weights])
            with open(src, "rb") as f:
                data = f.read()
            data = self.damage_header(data) if self.rng.random() < 0.5 else self.damage(data)
            d = os.path.join(self.root, f"st-{i}")
            os.makedirs(d)
            victim = os.path.join(d, os.path.basename(src))
            self.write(victim, data)
            mode = self.rng.randrange(5)
            if mode == 0:
                self.run(["inspect", "--file", victim], "safetensors/inspect", keep=victim)
            elif mode == 1:
                self.run(["inspect", "--json", "--file", victim], "safetensors/inspect --json", keep=victim)
            elif mode == 2:
                self.run(["compare", src, victim], "safetensors/compare", keep=victim)
            elif mode == 3:
                self.run(["eval", "--weights", victim, "--batch", "1000"], "safetensors/eval", keep=victim)
            elif src == ckpt:  # resume the halted run from the damaged checkpoint
                shutil.copytree(base + "/run", d + "/run")
                shutil.copy(victim, d + "/run/checkpoint.safetensors")
                self.run(["train"] + common + ["--epochs", "2", "--checkpoint-every", "0", "--out", d + "/run",
                                               "--resume"], "safetensors/train --resume", timeout=600, keep=victim)
            else:
                self.run(["train", "--arch", "smallcnn", "--subset", "128", "--epochs", "1", "--batch", "64",
                          "--threads", "2", "--init", victim, "--out", d + "/init"], "safetensors/train --init",
                         timeout=600, keep=victim)
            shutil.rmtree(d)


def main():
    targets = ["idx", "cifar10", "cifar100", "cinic", "imagenet", "safetensors", "runs"]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("minima", help="the minima binary (best a -DMINIMA_SANITIZE=ON build)")
    ap.add_argument("--iterations", type=int, default=100, help="damaged inputs per target (default 100)")
    ap.add_argument("--targets", default=",".join(targets), help="comma-separated, from: " + ", ".join(targets))
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--keep", help="directory that keeps the inputs of what was found")
    a = ap.parse_args()
    chosen = a.targets.split(",")
    unknown = [t for t in chosen if t not in targets]
    if unknown:
        sys.exit(f"error: unknown target {', '.join(unknown)} (expected {', '.join(targets)})")
    if a.iterations < 1:
        sys.exit("error: --iterations must be at least 1")
    if not (os.path.isfile(a.minima) and os.access(a.minima, os.X_OK)):
        sys.exit(f"error: {a.minima} is not an executable minima binary")
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
    f = Fuzzer(os.path.abspath(a.minima), a.iterations, a.seed, a.keep)
    jobs = {"idx": lambda: f.dataset("fashion-mnist", f.make_idx),
            "cifar10": lambda: f.dataset("cifar10", f.make_cifar10),
            "cifar100": lambda: f.dataset("cifar100", f.make_cifar100),
            "cinic": lambda: f.dataset("cinic10", f.make_cinic, folder=True),
            "imagenet": lambda: f.dataset("restricted-imagenet", f.make_imagenet, folder=True,
                                          extra=["--image-size", "16"]),
            "safetensors": f.safetensors,
            "runs": f.run_dirs}
    try:
        for t in chosen:
            before = f.runs
            jobs[t]()
            print(f"{t}: {f.runs - before} runs", flush=True)
    finally:
        shutil.rmtree(f.root, ignore_errors=True)
    print(f"{f.runs} runs, {len(f.found)} found")
    for tag, what in f.found:
        print(f"  {tag}: {what}")
    sys.exit(1 if f.found else 0)


if __name__ == "__main__":
    main()
