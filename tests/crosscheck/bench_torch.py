"""PyTorch eager twin of `minima bench train`: images/s of a full training step (forward,
cross-entropy, backward, SGD update with momentum) of a reference network (models.py) on random
data already on the device. Prints one JSON object.

usage: bench_torch.py ARCH CxHxW CLASSES BATCH DEVICE WARMUP ITERS [THREADS]
THREADS (CPU): intra-op threads, set to minima's OpenMP thread count for a like-for-like figure."""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


def main():
    arch, chw, classes, batch, device, warmup, iters = sys.argv[1:8]
    in_chw = [int(v) for v in chw.split("x")]
    classes, batch, warmup, iters = int(classes), int(batch), int(warmup), int(iters)
    if len(sys.argv) > 8 and int(sys.argv[8]) > 0:
        torch.set_num_threads(int(sys.argv[8]))
    dev = torch.device(device)
    torch.manual_seed(0)
    model = models.build(arch, in_chw, classes).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn([batch] + in_chw, device=dev)
    y = torch.randint(0, classes, (batch,), device=dev)

    def step():
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    dt = time.perf_counter() - t0
    print(json.dumps({"images_per_s": batch * iters / dt, "seconds_per_step": dt / iters,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
