"""PyTorch eager twin of `minima bench train`: images/s of a full training step (forward,
cross-entropy, backward, SGD update with momentum) of a reference network (models.py) on random
data already on the device. Prints one JSON object.

usage: bench_torch.py ARCH CxHxW CLASSES BATCH DEVICE WARMUP ITERS [THREADS] [PRECISION] [MATH] [HEAP]
THREADS (CPU): intra-op threads, set to minima's OpenMP thread count for a like-for-like figure.
PRECISION: fp32 (default) or bf16 (the forward under torch.autocast in bfloat16, as minima's
--precision bf16: float32 master weights, bfloat16 activations).
MATH: ieee (default) or tf32, as minima's --tf32: whether float32 matmuls and convolutions may run
on TF32 tensor cores. PyTorch allows TF32 in cuDNN by default; here it follows minima's setting, and
cuDNN picks its algorithms by timing them (cudnn.benchmark), as minima's cuDNN path does.
HEAP: keep (default) or release: what happens to host memory that PyTorch frees. glibc's malloc
gives each block above its mmap threshold (128 KiB, rising with the blocks freed) a mapping of its
own and returns it to the OS on free, so a CPU step's activations come back as fresh pages, a page
fault each, every step (12,000-23,000 a smallcnn step at batch 128). minima's CPU allocator keeps
freed memory in its heap; keep gives the peer the same policy, release leaves glibc's default.
The JSON reports the page faults of a timed step."""
import ctypes
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


def keep_freed_memory():
    """Has glibc serve blocks up to 1 GiB from its heap and never trim it (mallopt's
    M_MMAP_THRESHOLD and M_TRIM_THRESHOLD), so freed memory is reused without page faults."""
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc = ctypes.CDLL("libc.so.6")
    if not (libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)):
        raise SystemExit("mallopt refused the heap settings")


def main():
    arch, chw, classes, batch, device, warmup, iters = sys.argv[1:8]
    in_chw = [int(v) for v in chw.split("x")]
    classes, batch, warmup, iters = int(classes), int(batch), int(warmup), int(iters)
    if len(sys.argv) > 8 and int(sys.argv[8]) > 0:
        torch.set_num_threads(int(sys.argv[8]))
    precision = sys.argv[9] if len(sys.argv) > 9 else "fp32"
    if precision not in ("fp32", "bf16"):
        raise SystemExit(f"unknown precision {precision!r} (expected fp32 or bf16)")
    math = sys.argv[10] if len(sys.argv) > 10 else "ieee"
    if math not in ("ieee", "tf32"):
        raise SystemExit(f"unknown math {math!r} (expected ieee or tf32)")
    heap = sys.argv[11] if len(sys.argv) > 11 else "keep"
    if heap not in ("keep", "release"):
        raise SystemExit(f"unknown heap policy {heap!r} (expected keep or release)")
    if heap == "keep":
        keep_freed_memory()
    torch.backends.cuda.matmul.allow_tf32 = math == "tf32"
    torch.backends.cudnn.allow_tf32 = math == "tf32"
    torch.backends.cudnn.benchmark = True
    dev = torch.device(device)
    torch.manual_seed(0)
    model = models.build(arch, in_chw, classes).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn([batch] + in_chw, device=dev)
    y = torch.randint(0, classes, (batch,), device=dev)

    def step():
        opt.zero_grad(set_to_none=False)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x)
        F.cross_entropy(logits.float(), y).backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    dt = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"images_per_s": batch * iters / dt, "seconds_per_step": dt / iters,
                      "page_faults_per_step": faults / iters, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "precision": precision, "math": math,
                      "heap": heap}))


if __name__ == "__main__":
    main()
