#!/usr/bin/env bash
# scripts/gpu-check.sh: the whole device session of minima, prepared to run unattended on a lent
# GPU inside one short call. Everything is built on the development machine; only binaries travel.
#
#   scripts/gpu-check.sh --pack [SRC] [DEST]   (development machine) copy the stripped binaries the
#        check needs (minima, test_cuda, test_data) from the CUDA build folder SRC (default: build)
#        into DEST (default: gpu-build, about 45 MB, small enough to carry), with the commit id.
#   scripts/gpu-check.sh [BUILD]                (GPU machine) run the steps below on the binaries in
#        BUILD (default: gpu-build when it exists, else build).
#
# Steps, in order of importance, each with its own time cap, all inside one deadline
# ($GPU_CHECK_BUDGET seconds, default 480; a step that would start past it is skipped and counted
# as failed). Give the call that runs it a limit of about 560 s:
#   1. device and shared libraries (falls back to the CUDA libraries bundled with a pip PyTorch
#      when the system ones are missing);
#   2. test_cuda: every op against the CPU reference, native against cuBLAS/cuDNN, allocator,
#      determinism; and test_data's GPU input pipeline against the CPU's, batch for batch;
#   3. `minima bench ops`: native kernels against cuBLAS/cuDNN and the measured ceilings;
#   4. compute-sanitizer memcheck over a representative subset of the CUDA tests, with the caching
#      allocator off (MINIMA_CUDA_ALLOCATOR=direct) so every overrun hits an allocation's edge, and
#      racecheck and synccheck over the persistent batch norm's small shapes;
#   5. `minima bench train --device cuda`: images/s of a training step of every paper network,
#      with PyTorch eager on the same GPU in the same run;
#   6. `minima bench data`: the input pipeline on CPU and GPU and its share of a ResNet18 step;
#   7. the paper's protocol for ResNet18 on CIFAR-10 data (generated files in the real binary
#      format): one phase-1 epoch over C (R = 1) and one phase-2 epoch of vanilla and of sota, on
#      the first 10,000 training images (an epoch of the full set takes about five times as long);
#   8. `bench train --precision bf16` for ResNet18 (mixed precision) beside torch.autocast;
#   9. `bench train --bn persistent` for ResNet18: the persistent batch-norm kernel in a whole step;
#      8 and 9 each end with a profile of three more steps (--profile 3: time per backend entry);
#      when the persistent kernel's test fails in step 2, its runs in steps 4 and 9 are skipped;
#  10. PyTorch's matmul/conv2d/batch_norm times for bench ops' shapes (a peer, never a failure).
# GPU_CHECK_STEPS="2 3" runs only those steps (step 1 always runs), so a short lease can be spent
# on the tests first and the benchmarks in a second call. Logs go to $OUT/gpu-check/ when $OUT is
# set (else a temporary folder), at most eight files. The summary table is printed last. Exit
# status: the number of failed steps (0 = all passed).
set -u

if [ "${1:-}" = "--pack" ]; then
  SRC=${2:-build}
  DEST=${3:-gpu-build}
  mkdir -p "$DEST"
  for b in minima test_cuda test_data; do
    if [ ! -x "$SRC/$b" ]; then
      echo "error: $SRC/$b not found: configure a CUDA build first (cmake -S . -B $SRC -G Ninja -DMINIMA_CUDA=ON && ninja -C $SRC)" >&2
      exit 2
    fi
    strip -o "$DEST/$b" "$SRC/$b" || exit 2
  done
  if ! readelf -d "$DEST/test_cuda" | grep -q "libcudart"; then
    echo "error: $SRC is not a CUDA build (its test_cuda does not link the CUDA runtime)" >&2
    exit 2
  fi
  git describe --always --dirty > "$DEST/COMMIT" 2>/dev/null
  echo "packed $(du -sh "$DEST" | cut -f1) into $DEST (commit $(cat "$DEST/COMMIT" 2>/dev/null || echo unknown))"
  exit 0
fi

if [ -n "${1:-}" ]; then BUILD=$1
elif [ -x gpu-build/minima ]; then BUILD=gpu-build
else BUILD=build
fi
BUDGET=${GPU_CHECK_BUDGET:-480}
STEPS=" ${GPU_CHECK_STEPS:-2 3 4 5 6 7 8 9 10} "
want() { [[ "$STEPS" == *" $1 "* ]]; }
DEADLINE=$(( $(date +%s) + BUDGET ))
LOGDIR=${OUT:-$(mktemp -d)}/gpu-check
mkdir -p "$LOGDIR"
TESTS=$LOGDIR/tests.log BENCH=$LOGDIR/bench.log ADV=$LOGDIR/adversarial_init.log EPOCHS=$LOGDIR/epoch_seconds.txt
touch "$TESTS" "$BENCH"
SUMMARY=$LOGDIR/summary.txt
: > "$SUMMARY"
FAILED=()
START=$(date +%s)
step() { echo; echo "=== $* === [$(( $(date +%s) - START ))s]"; }
# cap SECONDS: the timeout for the next command, at most SECONDS and never past the deadline
# (0 when no time is left).
cap() { local left=$(( DEADLINE - $(date +%s) )); [ "$left" -lt "$1" ] && echo $(( left > 0 ? left : 0 )) || echo "$1"; }
# record NAME RC SECONDS [NOTE]: one line of the summary table; a non-zero RC counts as failed.
record() {
  local status=passed
  [ "$2" -eq 0 ] || { status="FAILED (exit $2$( [ "$2" -eq 124 ] && echo ', timed out'))"; FAILED+=("$1"); }
  printf '%-34s %-28s %5ss  %s\n' "$1" "$status" "$3" "${4:-}" >> "$SUMMARY"
}
# skip NAME WHY: a summary line for a step left out because of an earlier failure (not counted again).
skip() { printf '%-34s %-28s %5ss  %s\n' "$1" "skipped" 0 "$2" >> "$SUMMARY"; }
# The persistent batch norm's own test (step 2): when it fails, the steps that run that kernel
# again (its sanitizer runs, its ResNet18 step) are skipped, so the budget goes to the rest.
PERSISTENT_RC=0
# run_step NAME CAP LOG CMD...: runs CMD under a timeout, output to LOG; skipped past the deadline.
run_step() {
  local name=$1 limit t0 rc
  limit=$(cap "$2")
  local log=$3
  shift 3
  if [ "$limit" -le 5 ]; then record "$name" 124 0 "skipped: the ${BUDGET}s budget was spent"; return 124; fi
  t0=$(date +%s)
  # Line-buffered, so a step killed at its cap still shows how far it got; -k: a step that ignores
  # SIGTERM is killed 10 s later.
  timeout -k 10 "$limit" stdbuf -oL -eL "$@" >> "$log" 2>&1
  rc=$?
  record "$name" "$rc" $(( $(date +%s) - t0 ))
  return $rc
}
# A ResNet18 `bench train` with extra flags, PyTorch beside it, logged under "--- bench train TAG".
resnet18_train() {  # TAG, then the extra flags
  local tag=$1
  shift
  echo "--- bench train $tag" >> "$BENCH"
  run_step "bench train $tag" 50 "$BENCH" "$BUILD/minima" bench train --device cuda \
    --arch resnet18 --batch 128 --warmup 3 --iters 20 --profile 3 "$@" \
    --torch-script tests/crosscheck/bench_torch.py
  resnet18_profile "$tag"
}
# The row of a resnet18_train run, then the head of its profile (where a step's time goes).
resnet18_profile() {  # TAG
  local log
  log=$(sed -n "/^--- bench train $1/,/^---/p" "$BENCH")
  echo "$log" | grep -E "^(training|arch|resnet)"
  echo "$log" | grep -A13 "profiled steps,"
  echo "$log" | grep -E "all backend entries|outside them|  profiled step "
}

step "1. device and libraries"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  echo "binaries: $BUILD (commit $(cat "$BUILD/COMMIT" 2>/dev/null || echo unknown)); checkout: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
} | tee "$LOGDIR/device.txt"
for bin in "$BUILD/test_cuda" "$BUILD/test_data" "$BUILD/minima"; do
  if [ ! -x "$bin" ]; then
    echo "error: $bin not found: on the development machine run scripts/gpu-check.sh --pack and carry gpu-build" >&2
    exit 20
  fi
done
# Standard CUDA installs keep their libraries in lib64 (the binaries' RUNPATH names lib).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if ldd "$BUILD/test_cuda" "$BUILD/minima" | grep -q "not found"; then
  echo "some shared libraries are missing:"; ldd "$BUILD/test_cuda" "$BUILD/minima" | grep "not found"
  extra=$(python3 - 2>/dev/null <<'EOF'
import glob, os, site
dirs = []
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += glob.glob(os.path.join(sp, "nvidia", "*", "lib")) + glob.glob(os.path.join(sp, "torch", "lib"))
print(":".join(dirs))
EOF
)
  export LD_LIBRARY_PATH="${extra}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "retrying with the CUDA libraries of the python packages:"
  ldd "$BUILD/test_cuda" "$BUILD/minima" | grep "not found" || echo "  all found"
fi
if ! nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
  record "GPU visible" 1 0 "nvidia-smi lists no GPU: nothing below can run"
fi

if want 2; then
step "2. CUDA tests (test_cuda, test_data's GPU pipeline)"
# The persistent batch-norm kernel runs in a process of its own: it has not yet run on a GPU, and
# if it faulted or its 20 s wait gave up, the lost CUDA context would fail every test after it.
run_step "test_cuda" 180 "$TESTS" "$BUILD/test_cuda" --no-intro --duration=true -tce="*persistent kernel*"
run_step "test_cuda: persistent batch norm" 90 "$TESTS" "$BUILD/test_cuda" --no-intro --duration=true \
  -tc="*persistent kernel*"
PERSISTENT_RC=$?
run_step "test_data: GPU batches == CPU" 60 "$TESTS" "$BUILD/test_data" --no-intro --duration=true -tc="loader cuda*"
# Every CUDA test skips when it sees no device, and doctest calls that a pass.
grep -q "CUDA device 0:" "$TESTS" || record "CUDA tests saw the GPU" 1 0 "every CUDA test skipped: no device"
grep -E "ERROR|FAILED|error:|differ|SKIPPED|skipped|^\[doctest\] (test cases|assertions|Status)" "$TESTS" | head -60

fi
if want 3; then
step "3. minima bench ops"
run_step "bench ops" 150 "$LOGDIR/bench_ops.txt" "$BUILD/minima" bench ops --csv "$LOGDIR/bench_ops.csv"
tail -3 "$LOGDIR/bench_ops.txt"

fi
if want 4; then
step "4. compute-sanitizer memcheck (subset), racecheck and synccheck (persistent batch norm)"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer \
  /usr/local/cuda*/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
if [ -z "$SAN" ]; then
  record "memcheck" 127 0 "compute-sanitizer not found"
else
  SUBSET='cuda copy: strided*,cuda copy: dense casts*,cuda binary ops*,cuda reductions large*,cuda gemm on tensor cores*,cuda conv2d (native)*,cuda pooling*,cuda batch_norm*,cuda index_select*,cuda log_softmax*'
  echo "--- memcheck" >> "$TESTS"
  MINIMA_CUDA_ALLOCATOR=direct run_step "memcheck (subset)" 90 "$TESTS" "$SAN" --tool memcheck \
    --error-exitcode 99 --print-limit 20 "$BUILD/test_cuda" --no-intro -tc="$SUBSET" -tce="*persistent kernel*"
  if [ "$PERSISTENT_RC" -ne 0 ]; then
    for name in memcheck racecheck synccheck; do
      skip "$name (persistent batch norm)" "its test failed in step 2"
    done
  else
    # Not the long channels' case: it runs the passes on 8 million values, which memcheck slows
    # without checking the persistent kernel.
    MINIMA_CUDA_ALLOCATOR=direct run_step "memcheck (persistent batch norm)" 90 "$TESTS" "$SAN" --tool memcheck \
      --error-exitcode 99 --print-limit 20 "$BUILD/test_cuda" --no-intro -tc="*persistent kernel*" -tce="*too long*"
    # The persistent kernel's shared-memory pipeline (cp.async stages, no barrier between a
    # thread's own copies and reads) and its barriers, on shapes where no block waits for another's
    # sums.
    for tool in racecheck synccheck; do
      run_step "$tool (persistent batch norm)" 45 "$TESTS" "$SAN" --tool $tool --error-exitcode 99 --print-limit 20 \
        "$BUILD/test_cuda" --no-intro -tc="*persistent kernel: whole channels*"
    done
  fi
  sed -n '/^--- memcheck/,$p' "$TESTS" | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|^\[doctest\] (test cases|assertions)|Invalid|out of bounds|hazard" | head -24
fi

fi
if want 5; then
step "5. minima bench train --device cuda (PyTorch eager beside it)"
echo "--- bench train" >> "$BENCH"
run_step "bench train (6 networks + torch)" 130 "$BENCH" "$BUILD/minima" bench train --device cuda \
  --arch resnet18,vgg16,resnet50,densenet40,inception-small,alexnet-small --batch 128 --warmup 3 --iters 20 \
  --torch-script tests/crosscheck/bench_torch.py
sed -n '/^--- bench train/,$p' "$BENCH" | tail -8

fi
if want 6; then
step "6. minima bench data"
echo "--- bench data" >> "$BENCH"
run_step "bench data" 60 "$BENCH" "$BUILD/minima" bench data
sed -n '/^--- bench data/,$p' "$BENCH" | tail -10

fi
if want 7; then
step "7. adversarial-init, ResNet18 on CIFAR-10 files: one epoch of each phase on 10,000 images (x5 = an epoch)"
CIFAR=/tmp/minima-cifar10
rm -rf /tmp/minima-adv
python3 - "$CIFAR" <<'EOF' > "$ADV" 2>&1
import os, random, sys
# Random pixels and labels in the real CIFAR-10 binary layout (3073-byte records: label, 3072 pixels).
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
rng = random.Random(0)
for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
    buf = bytearray(os.urandom(10000 * 3073))
    for i in range(10000):
        buf[i * 3073] = rng.randrange(10)
    with open(os.path.join(d, name), "wb") as f:
        f.write(buf)
print("generated", d)
EOF
run_step "adversarial-init resnet18 epochs" 100 "$ADV" "$BUILD/minima" adversarial-init --dataset cifar10 \
  --data-dir "$CIFAR" --arch resnet18 --subset 10000 --replication 1 --seeds 0 --inits adversarial \
  --setups vanilla,sota --adv-epochs 1 --adv-check-every 1 --epochs 1 --eval-every 1 \
  --complexity-every 1 --device cuda --no-plot --out /tmp/minima-adv
# seconds per epoch: phase 1 counts its training pass, phase 2 training and test evaluation
for f in /tmp/minima-adv/phase1/*/metrics.csv /tmp/minima-adv/runs/*/metrics.csv; do
  [ -f "$f" ] && printf '%-34s %8.1f s per epoch of 10,000 images\n' "$(basename "$(dirname "$f")")" "$(tail -1 "$f" | awk -F, '{print $NF}')"
done > "$EPOCHS"
grep -E "epoch 1/1|error" "$ADV" | head -6
cat "$EPOCHS"

fi
if want 8; then
step "8. minima bench train --precision bf16 (ResNet18, PyTorch autocast beside it)"
resnet18_train bf16 --precision bf16

fi
if want 9; then
step "9. minima bench train --bn persistent (ResNet18, float32, PyTorch eager beside it)"
if [ "$PERSISTENT_RC" -ne 0 ]; then
  skip "bench train bn persistent" "the persistent test failed in step 2"
else
  resnet18_train "bn persistent" --bn persistent
fi

fi
if want 10; then
step "10. PyTorch peer for bench ops' shapes"
echo "--- torch peer" >> "$BENCH"
limit=$(cap 45)
if [ "$limit" -gt 5 ]; then
timeout "$limit" python3 - >> "$BENCH" 2>&1 <<'EOF'
import torch
if not torch.cuda.is_available():
    raise SystemExit("torch has no CUDA device")
torch.backends.cudnn.benchmark = True
def ms(f, reps=10):
    f(); torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps): f()
    b.record(); torch.cuda.synchronize()
    return a.elapsed_time(b) / reps
print("torch", torch.__version__, "cuDNN", torch.backends.cudnn.version(), "on", torch.cuda.get_device_name())
for tf32 in (False, True):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    for dt in ((torch.float32,) if tf32 else (torch.float32, torch.bfloat16)):
        n = 4096
        a, b = torch.randn(n, n, device="cuda", dtype=dt), torch.randn(n, n, device="cuda", dtype=dt)
        t = ms(lambda: a @ b)
        name = "tf32" if tf32 else str(dt).replace("torch.", "")
        print(f"torch matmul {name:8s} {n}^3            {t:9.4f} ms {2*n**3/t/1e9:8.2f} TFLOP/s")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
for c, hw in ((64, 32), (128, 16), (256, 8), (512, 4)):
    x = torch.randn(128, c, hw, hw, device="cuda", requires_grad=True)
    w = torch.randn(c, c, 3, 3, device="cuda", requires_grad=True)
    y = torch.nn.functional.conv2d(x, w, padding=1)
    g = torch.randn_like(y)
    fl = 2 * 128 * c * hw * hw * c * 9
    tf = ms(lambda: torch.nn.functional.conv2d(x, w, padding=1))
    tdx = ms(lambda: torch.nn.grad.conv2d_input(x.shape, w, g, padding=1))
    tdw = ms(lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, padding=1))
    for nm, t in (("forward", tf), ("input grad", tdx), ("weight grad", tdw)):
        print(f"torch conv2d fp32 N128 {c}->{c} {hw}^2 {nm:11s} {t:9.4f} ms {fl/t/1e9:8.2f} TFLOP/s")
# Batch norm in training, forward and backward, on bench ops' two shapes: the compulsory bytes per
# element are 8 forward (read x, write y) and 12 backward (read x and gy, write gx), as there.
bn = torch.nn.BatchNorm2d(64).cuda().train()
for shape in ((128, 64, 32, 32), (256, 64, 64, 64)):
    x = torch.randn(*shape, device="cuda", requires_grad=True)
    y = bn(x)
    g = torch.randn_like(y)
    n = x.numel()
    tf = ms(lambda: bn(x))
    tb = ms(lambda: torch.autograd.grad(y, (x, bn.weight, bn.bias), g, retain_graph=True))
    name = "x".join(map(str, shape))
    print(f"torch batch_norm train fwd {name:14s} {tf:9.4f} ms {8*n/tf/1e6:8.1f} GB/s")
    print(f"torch batch_norm backward  {name:14s} {tb:9.4f} ms {12*n/tb/1e6:8.1f} GB/s")
EOF
echo "peer exit status $? (not counted as a failure)" >> "$BENCH"
fi
sed -n '/^--- torch peer/,$p' "$BENCH" | tail -22
fi

echo
echo "=== summary ($(( $(date +%s) - START ))s of a ${BUDGET}s budget; logs in $LOGDIR) ==="
echo
# bench ops: its header and every row with a target (the whole table is in bench_ops.txt / .csv).
grep -E "^(minima bench ops|ceilings|family )|  (met|MISSED|FAILED)|n/a \(no vendor|target\(s\) missed|figure\(s\) failed|^  " \
  "$LOGDIR/bench_ops.txt" 2>/dev/null
echo
sed -n '/^--- bench train$/,/^---/p' "$BENCH" | grep -E "^(training|arch|resnet|vgg|densenet|inception|alexnet)"
resnet18_profile bf16
resnet18_profile "bn persistent"
sed -n '/^--- bench data/,/^---/p' "$BENCH" | grep -E "gpu|share"
grep -sE "epoch 1/1" "$ADV" | sed 's/ | ETA.*//'
cat "$EPOCHS" 2>/dev/null
echo
cat "$SUMMARY"
if [ ${#FAILED[@]} -eq 0 ]; then echo "gpu-check: all steps passed"
else echo "gpu-check: FAILED: ${FAILED[*]}"; fi
exit ${#FAILED[@]}
