"""Zhang et al. (2017)'s randomization tests, the protocol of `minima randomization`, written again in
PyTorch, so that minima's numbers can be checked against an independent implementation.

Per seed, one initialization (torch.manual_seed(seed)) is trained under each variant on the first N
Fashion-MNIST training images: true labels, random labels, labels corrupted with probability p (a
uniform class, which may equal the true one), or Gaussian images with the training set's pixel mean
and std (true labels kept). SGD with momentum, no weight decay, lr * decay^(steps taken / decay
steps) set at the start of each epoch, until the whole (randomized) training set is fitted in eval
mode or the epoch budget ends. Reports per run the steps it took to fit and the test accuracy on the
true test labels. --regularizers adds Table 1's explicit regularizers: each variant again with
random crops (zero padding 4, no flip), with weight decay (--weight-decay, coupled), or both.

The random draws (init, labels, images, batch order) come from PyTorch's and numpy's generators, not
minima's, so single runs differ; what must agree is each variant's figures up to the spread over
seeds. Prints one JSON object.

  /usr/bin/python3 tests/crosscheck/randomization.py --subset 500 --seeds 0,1,2,3
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402  (the reference definitions of minima's networks)
from adversarial_init import accuracy, load_subset, train_epoch  # noqa: E402


def randomize(kind, p, x, y, mean, std, rng):
    """The training images and labels of one variant; Gaussian images come back as float32 in
    pixel/255 units, everything else as uint8."""
    if kind == "true-labels":
        return x, y
    if kind in ("random-labels", "corrupt-labels"):
        q = 1.0 if kind == "random-labels" else p
        y = y.copy()
        hit = rng.random(y.shape[0]) < q
        y[hit] = rng.integers(0, 10, size=int(hit.sum()))
        return x, y
    if kind == "gaussian":
        return rng.normal(mean, std, size=x.shape).astype(np.float32), y
    sys.exit("error: unknown variant '%s'" % kind)


def random_crops(x, rng, pad=4):
    """torchvision's RandomCrop(H, padding=pad) of each image (zero padding), without a flip."""
    n, _, h, w = x.shape
    padded = np.zeros((n, x.shape[1], h + 2 * pad, w + 2 * pad), x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy, dx = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
    return np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def in_pixel_units(x):
    """train_epoch and accuracy normalize images as (x / 255 - mean) / std: float images in pixel/255
    units are scaled by 255 so that the same arithmetic applies."""
    return x if x.dtype == np.uint8 else (x * 255.0).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--arch", default="mlp")
    ap.add_argument("--subset", type=int, default=500)
    ap.add_argument("--variants", default="true-labels,random-labels,corrupt-labels:0.5,gaussian")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--lr-decay", type=float, default=0.95)
    ap.add_argument("--decay-steps", type=int, default=391)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--regularizers", default="none", help="none, crop, wd, crop+wd")
    ap.add_argument("--weight-decay", type=float, default=5e-4, help="of the wd runs")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    x, y, x_te, y_te, mean, std = load_subset(a.data_dir, a.subset)
    shape = tuple(x.shape[1:])
    steps_per_epoch = (a.subset + a.batch - 1) // a.batch
    t0 = time.time()
    runs = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        torch.manual_seed(seed)
        init = {k: v.clone() for k, v in models.build(a.arch, shape, 10).state_dict().items()}
        for variant, reg in [(v, r) for v in a.variants.split(",") for r in a.regularizers.split(",")]:
            kind, _, p = variant.partition(":")
            rx, ry = randomize(kind, float(p or 0), x, y, mean, std, np.random.default_rng(1000 + seed))
            rx = in_pixel_units(rx)
            model = models.build(a.arch, shape, 10)
            model.load_state_dict(init)
            wd = a.weight_decay if "wd" in reg else 0.0
            opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=wd)
            rng = np.random.default_rng(2000 + seed)
            steps_to_fit, epochs = -1, 0
            for e in range(a.epochs):
                for g in opt.param_groups:
                    g["lr"] = a.lr * a.lr_decay ** (e * steps_per_epoch / a.decay_steps)
                train_epoch(model, opt, rx, ry, a.batch, mean, std, rng, random_crops if "crop" in reg else False)
                epochs = e + 1
                if accuracy(model, rx, ry, mean, std) >= 100.0:
                    steps_to_fit = epochs * steps_per_epoch
                    break
            runs.append(dict(variant=variant, regularizer=reg, seed=seed, epochs=epochs, steps_to_fit=steps_to_fit,
                             train_acc=accuracy(model, rx, ry, mean, std),
                             test_acc=accuracy(model, x_te, y_te, mean, std)))
    print(json.dumps(dict(arch=a.arch, subset=a.subset, runs=runs, seconds=time.time() - t0), indent=1))


if __name__ == "__main__":
    main()
