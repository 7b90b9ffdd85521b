"""Recomputes with PyTorch every case that tests/nn/test_ops_torch.cpp wrote, and prints a JSON
report: {"cases", "compared", "torch", "mismatches": [...]}. Usage: ops.py FILE.safetensors

Each case holds an op's inputs (c<i>.x<j>), minima's outputs (c<i>.y<k>), the upstream gradient
(c<i>.g) and minima's gradients of the inputs that wanted one (c<i>.dx<j>). Floating cases are
recomputed in float64 from the same input values and rounded to the case's dtype, so the tolerance
measures minima's error, not PyTorch's float32 rounding; the result's dtype and shape come from
PyTorch run in the case's own dtype. Integer and boolean results must be equal. NaN must meet NaN
and an infinity the same infinity."""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import models  # noqa: E402  (the safetensors reader)

# |minima - reference| <= TOL * (|reference| + max |reference|): relative, with a floor at the
# tensor's scale for sums that cancel.
TOL = {torch.float32: 2e-5, torch.float64: 1e-11, torch.bfloat16: 1.6e-2}


def all_dims(x, dims):
    return list(dims) if dims else list(range(x.dim()))


def reduce_op(fn):
    def run(x, a):
        if x.dim() == 0:
            return fn(x)
        return fn(x, dim=all_dims(x, a["dims"]), keepdim=a["keepdim"])
    return run


def var_op(x, a):
    if x.dim() == 0:
        return torch.var(x, unbiased=a["correction"] == 1)
    return torch.var(x, dim=all_dims(x, a["dims"]), unbiased=a["correction"] == 1, keepdim=a["keepdim"])


def int_div(x, y):
    if x.is_floating_point() or y.is_floating_point():
        return x / y
    return torch.div(x, y, rounding_mode="trunc")


def batch_norm(x, w, b, rm, rv, a):
    rm, rv = rm.clone(), rv.clone()
    y = F.batch_norm(x, rm, rv, w, b, a["training"], a["momentum"], a["eps"])
    return y, rm, rv


OPS = {
    "add": lambda x, y, a: x + y, "sub": lambda x, y, a: x - y, "mul": lambda x, y, a: x * y,
    "div": lambda x, y, a: int_div(x, y), "pow": lambda x, y, a: torch.pow(x, y),
    "maximum": lambda x, y, a: torch.maximum(x, y), "minimum": lambda x, y, a: torch.minimum(x, y),
    "eq": lambda x, y, a: x == y, "ne": lambda x, y, a: x != y, "lt": lambda x, y, a: x < y,
    "le": lambda x, y, a: x <= y, "gt": lambda x, y, a: x > y, "ge": lambda x, y, a: x >= y,
    "where": lambda c, x, y, a: torch.where(c.bool(), x, y),
    "add_scalar": lambda x, a: x + a["s"],
    # An integer tensor takes integral scalars only, and stays integer (minima refuses 2.5).
    "mul_scalar": lambda x, a: x * (a["s"] if x.is_floating_point() else int(a["s"])),
    "pow_scalar": lambda x, a: x ** a["s"],
    "neg": lambda x, a: -x, "exp": lambda x, a: torch.exp(x), "log": lambda x, a: torch.log(x),
    "log1p": lambda x, a: torch.log1p(x), "sqrt": lambda x, a: torch.sqrt(x), "abs": lambda x, a: torch.abs(x),
    "square": lambda x, a: torch.square(x), "reciprocal": lambda x, a: torch.reciprocal(x),
    "sigmoid": lambda x, a: torch.sigmoid(x), "tanh": lambda x, a: torch.tanh(x), "relu": lambda x, a: torch.relu(x),
    "softplus": lambda x, a: F.softplus(x), "sign": lambda x, a: torch.sign(x),
    "clamp": lambda x, a: torch.clamp(x, a["lo"], a["hi"]),
    "sum": reduce_op(torch.sum), "mean": reduce_op(torch.mean), "max": reduce_op(torch.amax),
    "min": reduce_op(torch.amin), "var": var_op,
    "argmax": lambda x, a: torch.argmax(x, a["dim"], a["keepdim"]),
    "argmin": lambda x, a: torch.argmin(x, a["dim"], a["keepdim"]),
    "matmul": lambda x, y, a: torch.matmul(x, y),
    "linear": lambda x, w, b, a: F.linear(x, w, b),
    "conv2d": lambda x, w, b, a: F.conv2d(x, w, b, a["stride"], a["padding"], a["dilation"], a["groups"]),
    "max_pool2d": lambda x, a: F.max_pool2d(x, a["kernel"], a["stride"], a["padding"]),
    "avg_pool2d": lambda x, a: F.avg_pool2d(x, a["kernel"], a["stride"], a["padding"],
                                            count_include_pad=a["count_include_pad"]),
    "adaptive_avg_pool2d": lambda x, a: F.adaptive_avg_pool2d(x, (a["out_h"], a["out_w"])),
    "batch_norm": batch_norm,
    "cat": lambda x, y, a: torch.cat([x, y], a["dim"]),
    "stack": lambda x, y, a: torch.stack([x, y], a["dim"]),
    "pad": lambda x, a: F.pad(x, a["pads"], value=a["value"]),
    "flip": lambda x, a: torch.flip(x, a["dims"]),
    "index_select": lambda x, i, a: torch.index_select(x, a["dim"], i),
    "gather": lambda x, i, a: torch.gather(x, a["dim"], i),
    "log_softmax": lambda x, a: F.log_softmax(x, a["dim"]),
    "softmax": lambda x, a: F.softmax(x, a["dim"]),
    "cross_entropy": lambda x, t, a: F.cross_entropy(x, t),
    "nll_loss": lambda x, t, a: F.nll_loss(x, t),
    "bce_with_logits": lambda x, y, a: F.binary_cross_entropy_with_logits(x, y),
    "mse_loss": lambda x, y, a: F.mse_loss(x, y),
}


def as_tuple(y):
    return tuple(y) if isinstance(y, tuple) else (y,)


def compare(got, ref, what):
    """None when got matches ref (already in got's dtype), else a description."""
    if got.shape != ref.shape:
        return {"what": what, "problem": f"shape {list(got.shape)}, PyTorch {list(ref.shape)}"}
    if not ref.is_floating_point():
        bad = (got != ref).nonzero()
        if len(bad):
            i = tuple(bad[0].tolist())
            return {"what": what, "problem": f"{len(bad)} of {got.numel()} values differ",
                    "first": {"index": list(i), "minima": got[i].item(), "torch": ref[i].item()}}
        return None
    g, r = got.double(), ref.double()
    nan_g, nan_r = torch.isnan(g), torch.isnan(r)
    inf_mismatch = (torch.isinf(g) | torch.isinf(r)) & (g != r) & ~nan_g & ~nan_r
    finite = torch.isfinite(r) & torch.isfinite(g)
    scale = r[finite].abs().max().item() if finite.any() else 0.0
    tol = TOL[ref.dtype]
    close = (g - r).abs() <= tol * (r.abs() + scale)
    bad = (nan_g != nan_r) | inf_mismatch | (finite & ~close)
    if bad.any():
        idx = bad.nonzero()
        i = tuple(idx[0].tolist())
        diff = (g - r).abs()[finite].max().item() if finite.any() else 0.0
        return {"what": what, "problem": f"{len(idx)} of {g.numel()} values differ (max abs diff {diff:.3g}, "
                                         f"scale {scale:.3g})",
                "first": {"index": list(i), "minima": g[i].item(), "torch": r[i].item()}}
    return None


def run_case(i, case, t):
    key = f"c{i}"
    op, args = case["op"], case["args"]
    xs = [t.get(f"{key}.x{j}") for j in range(case["inputs"])]
    ys = [t[f"{key}.y{k}"] for k in range(case["outputs"])]
    grads = set(case["grads"])
    fn = OPS[op]
    problems, compared = [], 0

    # The result's dtype and shape, as PyTorch gives them in the case's own dtypes.
    with torch.no_grad():
        native = as_tuple(fn(*[x.clone() if x is not None else None for x in xs], args))
    for k, (y, n) in enumerate(zip(ys, native)):
        want = torch.uint8 if n.dtype == torch.bool else n.dtype
        if y.dtype != want:
            problems.append({"what": f"y{k}", "problem": f"dtype {y.dtype}, PyTorch {n.dtype}"})

    # The values: floats recomputed in float64, then rounded to each result's dtype.
    wide = [x.double() if x is not None and x.is_floating_point() else x for x in xs]
    for j in grads:
        wide[j] = wide[j].clone().requires_grad_()
    ref = as_tuple(fn(*wide, args))
    for k, (y, r) in enumerate(zip(ys, ref)):
        r = r.detach()
        r = r.to(torch.uint8) if r.dtype == torch.bool else r.to(y.dtype) if y.dtype != r.dtype else r
        p = compare(y, r, f"y{k}")
        compared += 1
        if p:
            problems.append(p)
    if grads:
        g = t[f"{key}.g"]
        ref[0].backward(g.double() if g.is_floating_point() else g)
        for j in sorted(grads):
            dx = t[f"{key}.dx{j}"]
            rj = wide[j].grad
            if rj is None:
                rj = torch.zeros_like(wide[j])
            p = compare(dx, rj.to(dx.dtype), f"dx{j}")
            compared += 1
            if p:
                problems.append(p)
    for p in problems:
        p.update({"case": i, "op": op, "args": args,
                  "inputs": [f"{list(x.shape)} {x.dtype}" for x in xs if x is not None]})
    return problems, compared


def main():
    t, meta = models.read_safetensors(sys.argv[1])
    cases = json.loads(meta["cases"])
    mismatches, compared = [], 0
    for i, case in enumerate(cases):
        try:
            p, c = run_case(i, case, t)
        except Exception as e:  # a case PyTorch cannot run is a mismatch too, said as such
            p, c = [{"case": i, "op": case["op"], "args": case["args"], "problem": f"PyTorch raised {e!r}"}], 0
        mismatches += p
        compared += c
    print(json.dumps({"cases": len(cases), "compared": compared, "torch": torch.__version__,
                      "mismatches": mismatches}))


if __name__ == "__main__":
    main()
