"""Liu, Papailiopoulos, Achlioptas (2020), the protocol of `minima adversarial-init`, written again in
PyTorch, so that minima's numbers can be checked against an independent implementation.

Phase 1 (per seed): build the adversarial set C from the first N training images (R copies of each;
in each copy int(numel * zero_out) raw uint8 values, drawn without replacement, set to 0; a uniform
random label per copy), train from a random init with vanilla SGD at a constant learning rate and
measure the accuracy on C in eval mode every `--adv-check-every` epochs, stopping at the target.
Phase 2 (per seed, init, setup): train on the clean N images with true labels for `--epochs` epochs,
lr x0.1 at 150/350 and 250/350 of them, from the same random init or from the phase-1 weights, with
a fresh optimizer; `vanilla` has no augmentation, momentum 0 and weight decay 0, and the subsets of
{DA, M, L2} add pad-4 random crops with horizontal flips, momentum 0.9 and weight decay 5e-4.

The random draws (init, C, batch order, crops) come from PyTorch's and numpy's generators, not
minima's, so single runs differ; what must agree is each setup's accuracy up to the spread over
seeds. Prints one JSON object: per run the final train accuracy (clean set, eval mode) and test
accuracy, in percent.

  /usr/bin/python3 tests/crosscheck/adversarial_init.py --subset 500 --replication 2 --seeds 0,1,2
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402  (the reference definitions of minima's networks)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(dir_, stem):
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            p = os.path.join(dir_, stem.replace("-idx", sep + "idx") + ext)
            if os.path.exists(p):
                return p
    sys.exit("error: %s not found in %s" % (stem, dir_))


def load_fashion_mnist(dir_):
    x_tr = read_idx(find(dir_, "train-images-idx3-ubyte"))
    y_tr = read_idx(find(dir_, "train-labels-idx1-ubyte"))
    x_te = read_idx(find(dir_, "t10k-images-idx3-ubyte"))
    y_te = read_idx(find(dir_, "t10k-labels-idx1-ubyte"))
    # Normalization constants of the whole training set, as minima's loader uses them.
    mean = float(x_tr.astype(np.float64).mean() / 255.0)
    std = float((x_tr.astype(np.float64) / 255.0).std())
    return (x_tr[:, None], y_tr.astype(np.int64)), (x_te[:, None], y_te.astype(np.int64)), mean, std


def load_subset(dir_, subset):
    """The first `subset` training images and labels (copies), the test split, and the whole training
    set's pixel mean and std."""
    (x_tr, y_tr), (x_te, y_te), mean, std = load_fashion_mnist(dir_)
    return x_tr[:subset].copy(), y_tr[:subset].copy(), x_te, y_te, mean, std


def adversarial_set(x, R, zero_out, seed):
    """R noisy copies of every image, copy j of image j % N, each with its own random label."""
    rng = np.random.default_rng(seed)
    n_img = x.shape[0]
    n = int(np.prod(x.shape[1:]))
    k = int(n * zero_out)
    flat = np.tile(x.reshape(n_img, n), (R, 1))
    for j in range(flat.shape[0]):
        flat[j, rng.choice(n, size=k, replace=False)] = 0
    labels = rng.integers(0, 10, size=flat.shape[0]).astype(np.int64)
    return flat.reshape((-1,) + x.shape[1:]), labels


def normalize(x_u8, mean, std):
    return (torch.from_numpy(x_u8.astype(np.float32)) / 255.0 - mean) / std


def augment(x_u8, rng):
    """Pad-4 random crop (zero padding of the raw image) and horizontal flip with probability 1/2."""
    b, c, h, w = x_u8.shape
    padded = np.zeros((b, c, h + 8, w + 8), dtype=np.uint8)
    padded[:, :, 4:4 + h, 4:4 + w] = x_u8
    out = np.empty_like(x_u8)
    dy = rng.integers(0, 9, size=b)
    dx = rng.integers(0, 9, size=b)
    flip = rng.random(b) < 0.5
    for i in range(b):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop[:, :, ::-1] if flip[i] else crop
    return out


def train_epoch(model, opt, x_u8, y, batch, mean, std, rng, da):
    """One epoch of SGD in a random order; da: True for augment(), or another function of
    (images, rng) that returns the batch's augmented images."""
    model.train()
    order = rng.permutation(x_u8.shape[0])
    transform = da if callable(da) else (augment if da else None)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        xb = transform(x_u8[idx], rng) if transform else x_u8[idx]
        loss = F.cross_entropy(model(normalize(xb, mean, std)), torch.from_numpy(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def accuracy(model, x_u8, y, mean, std, batch=1000):
    model.eval()
    correct = 0
    for s in range(0, x_u8.shape[0], batch):
        logits = model(normalize(x_u8[s:s + batch], mean, std))
        correct += int((logits.argmax(1) == torch.from_numpy(y[s:s + batch])).sum())
    return 100.0 * correct / x_u8.shape[0]


def parse_setup(name):
    low = name.lower()
    if low == "vanilla":
        return dict(da=False, m=False, l2=False)
    if low == "sota":
        return dict(da=True, m=True, l2=True)
    parts = low.split("+")
    bad = [p for p in parts if p not in ("da", "m", "l2")]
    if bad:
        sys.exit("error: unknown setup '%s'" % name)
    return dict(da="da" in parts, m="m" in parts, l2="l2" in parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--arch", default="mlp")
    ap.add_argument("--subset", type=int, default=500)
    ap.add_argument("--replication", type=int, default=2)
    ap.add_argument("--zero-out", type=float, default=0.1)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--setups", default="vanilla,sota")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--adv-epochs", type=int, default=100)
    ap.add_argument("--adv-lr", type=float, default=0.1)
    ap.add_argument("--adv-check-every", type=int, default=5)
    ap.add_argument("--adv-target", type=float, default=99.99)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    x, y, x_te, y_te, mean, std = load_subset(a.data_dir, a.subset)
    shape = tuple(x.shape[1:])
    t0 = time.time()
    runs, phase1 = [], []
    for seed in [int(s) for s in a.seeds.split(",")]:
        torch.manual_seed(seed)
        init = models.build(a.arch, shape, 10).state_dict()
        init = {k: v.clone() for k, v in init.items()}

        # Phase 1: fit C from the random init.
        cx, cy = adversarial_set(x, a.replication, a.zero_out, 1000 + seed)
        model = models.build(a.arch, shape, 10)
        model.load_state_dict(init)
        opt = torch.optim.SGD(model.parameters(), lr=a.adv_lr, momentum=0.0, weight_decay=0.0)
        rng = np.random.default_rng(2000 + seed)
        acc_c, epochs = 0.0, 0
        for e in range(a.adv_epochs):
            train_epoch(model, opt, cx, cy, a.batch, mean, std, rng, False)
            epochs = e + 1
            if epochs % a.adv_check_every == 0 or epochs == a.adv_epochs:
                acc_c = accuracy(model, cx, cy, mean, std)
                if acc_c >= a.adv_target:
                    break
        adv = {k: v.clone() for k, v in model.state_dict().items()}
        phase1.append(dict(seed=seed, C_size=int(cx.shape[0]), epochs=epochs, acc_on_C=acc_c))

        # Phase 2: every init under every setup, with a fresh optimizer.
        for setup in a.setups.split(","):
            s = parse_setup(setup)
            for init_name, weights in (("random", init), ("adversarial", adv)):
                model = models.build(a.arch, shape, 10)
                model.load_state_dict(weights)
                opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9 if s["m"] else 0.0,
                                      weight_decay=5e-4 if s["l2"] else 0.0)
                milestones = [round(a.epochs * 150 / 350), round(a.epochs * 250 / 350)]
                rng = np.random.default_rng(3000 + seed)
                for e in range(a.epochs):
                    lr = a.lr * (0.1 ** sum(e >= m for m in milestones))
                    for g in opt.param_groups:
                        g["lr"] = lr
                    train_epoch(model, opt, x, y, a.batch, mean, std, rng, s["da"])
                runs.append(dict(init=init_name, setup=setup, seed=seed,
                                 train_acc=accuracy(model, x, y, mean, std),
                                 test_acc=accuracy(model, x_te, y_te, mean, std)))
    print(json.dumps(dict(arch=a.arch, subset=a.subset, replication=a.replication, epochs=a.epochs,
                          phase1=phase1, runs=runs, seconds=time.time() - t0), indent=1))


if __name__ == "__main__":
    main()
