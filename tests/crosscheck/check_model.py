"""Cross-check of one minima network against its PyTorch reference (models.py).

usage: check_model.py DIR [DIR ...]   (one JSON line per DIR; with a float32 and a float64 DIR of
the same weights and batch, in that order, the float32 report also gets the noise floor)
DIR/weights.safetensors  the initial weights, written by minima's save_weights (metadata: arch,
                         in_shape, classes); loaded here with load_state_dict(strict=True)
DIR/minima.safetensors   what minima computed: x, y, logits_train, loss, grad.<param>,
                         logits_eval, after.<state key> (state after the SGD steps); metadata:
                         lr, momentum, weight_decay, steps

The same sequence runs here: a train-mode forward/backward (logits, loss, gradients), an eval-mode
forward, then `steps` SGD steps (train mode, same batch), in the dtype of the weights file (float32
or float64). Prints one JSON object per DIR: for each quantity the largest absolute difference
and the largest absolute reference value; for the gradients and the state after SGD the worst
tensor (relative to its own largest value) and the largest difference over all tensors
(`*_all`, relative to the largest value over all tensors). For float32 files, "noise" holds the
same figures for PyTorch float32 against PyTorch float64: the float32 noise floor."""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


def diff(a, b):
    a, b = a.detach().double(), b.detach().double()
    assert a.shape == b.shape, (a.shape, b.shape)
    return {"max_abs_diff": (a - b).abs().max().item() if a.numel() else 0.0,
            "max_abs_ref": b.abs().max().item() if b.numel() else 0.0}


def overall(items):
    return {"max_abs_diff": max(d["max_abs_diff"] for d in items.values()),
            "max_abs_ref": max(d["max_abs_ref"] for d in items.values())}


def worst(items):
    """items: name -> diff dict; the entry with the largest difference relative to its own largest
    value, floored at 1e-3 of the largest value over all entries (a gradient that is zero in exact
    arithmetic, e.g. a conv bias followed by batch norm, must not count as a mismatch)."""
    best = None
    floor = max(1e-300, 1e-3 * overall(items)["max_abs_ref"])
    for name, d in items.items():
        rel = d["max_abs_diff"] / max(floor, d["max_abs_ref"])
        if best is None or rel > best[0]:
            best = (rel, dict(d, name=name))
    return best[1]


def recipe(model, x, y, meta):
    """The sequence minima ran: returns its results as a dict of tensors / dicts of tensors."""
    r = {}
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    r["logits_train"], r["loss"] = logits.detach(), loss.detach()
    r["grads"] = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.eval()
    with torch.no_grad():
        r["logits_eval"] = model(x)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=float(meta["lr"]), momentum=float(meta["momentum"]),
                          weight_decay=float(meta["weight_decay"]))
    for _ in range(int(meta["steps"])):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    r["after"] = {k: v.clone() for k, v in model.state_dict().items()}
    return r


def compare(got, ref):
    """got: dict like recipe()'s result (or minima's tensors regrouped); ref: recipe()'s result."""
    out = {}
    for k in ["logits_train", "loss", "logits_eval"]:
        out[k] = diff(got[k], ref[k])
    grads = {n: diff(got["grads"][n], g) for n, g in ref["grads"].items()}
    out["grads"], out["grads_all"] = worst(grads), overall(grads)
    after = {k: diff(got["after"][k], v) for k, v in ref["after"].items() if v.is_floating_point()}
    out["after_sgd"], out["after_sgd_all"] = worst(after), overall(after)
    out["num_batches_tracked_equal"] = all(
        torch.equal(got["after"][k], v) for k, v in ref["after"].items() if not v.is_floating_point())
    return out


def check(d):
    """Returns (report, PyTorch's results) for one directory."""
    weights, wmeta = models.read_safetensors(os.path.join(d, "weights.safetensors"))
    mine, meta = models.read_safetensors(os.path.join(d, "minima.safetensors"))
    in_chw = [int(v) for v in wmeta["in_shape"].split("x")]
    arch, classes = wmeta["arch"], int(wmeta["classes"])
    dtype = next(v.dtype for v in weights.values() if v.is_floating_point())
    got = {k: mine[k] for k in ["logits_train", "loss", "logits_eval"]}
    got["grads"] = {k[5:]: v for k, v in mine.items() if k.startswith("grad.")}
    got["after"] = {k[6:]: v for k, v in mine.items() if k.startswith("after.")}

    model = models.build(arch, in_chw, classes).to(dtype)
    model.load_state_dict(weights, strict=True)
    ref = recipe(model, mine["x"], mine["y"], meta)
    out = compare(got, ref)
    out["params"] = sum(p.numel() for p in model.parameters())
    out["dtype"] = str(dtype)
    return out, ref


def main():
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    reports, refs = [], []
    for d in sys.argv[1:]:
        rep, ref = check(d)
        reports.append(rep)
        refs.append(ref)
    # The float32 noise floor: with a float32 and a float64 directory holding the same weights and
    # batch (minima writes them so), how far PyTorch's own float32 result is from its float64 one.
    # Deep BN networks at tiny batches are ill-conditioned; below this scale no float32
    # implementation can be expected to agree.
    if len(reports) == 2 and reports[0]["dtype"] == "torch.float32" and reports[1]["dtype"] == "torch.float64":
        reports[0]["noise"] = compare(refs[0], refs[1])
    for r in reports:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
