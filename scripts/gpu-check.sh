#!/usr/bin/env bash
# scripts/gpu-check.sh: the one device session of the CUDA backend, prepared to run unattended on
# a lent GPU in a few minutes. It expects a build folder made with CUDA on the development
# machine and carried along (default: build/; pass another as $1):
#   1. the device and the shared libraries the binaries need (falls back to the CUDA libraries
#      bundled with a pip PyTorch when the system ones are missing);
#   2. the CUDA test suite (test_cuda: every op against the CPU reference, native against
#      cuBLAS/cuDNN, allocator, determinism);
#   3. compute-sanitizer memcheck over a representative subset of those tests, with the caching
#      allocator off (MINIMA_CUDA_ALLOCATOR=direct) so every overrun hits an allocation's edge;
#   4. PyTorch's matmul/conv2d times for the same shapes, when python3 has torch (a peer);
#   5. `minima bench ops`: its table (native vs vendor, achieved vs measured ceilings) is printed
#      last.
# Logs go to $OUT/gpu-check/ when $OUT is set (else a temporary folder). Exit status: the number
# of failed steps (0 = all passed). Expected time: about 4 minutes; every step has a timeout, so
# the whole session stays under 13 minutes even when something hangs.
# (The allocator tests are not in the memcheck subset: with caching off they cannot see reuse.)
set -u
BUILD=${1:-build}
LOGDIR=${OUT:-$(mktemp -d)}/gpu-check
mkdir -p "$LOGDIR"
FAILED=()
step() { echo; echo "=== $* ==="; }
elapsed() { echo "($(( $(date +%s) - $1 ))s)"; }

step "1. device and libraries"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$LOGDIR/device.txt"
for bin in "$BUILD/test_cuda" "$BUILD/minima"; do
  if [ ! -x "$bin" ]; then
    echo "error: $bin not found: build with CUDA first (cmake -B $BUILD ... && ninja -C $BUILD)" >&2
    exit 20
  fi
done
if ldd "$BUILD/test_cuda" | grep -q "not found"; then
  echo "some shared libraries are missing:"; ldd "$BUILD/test_cuda" | grep "not found"
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
  ldd "$BUILD/test_cuda" | grep "not found" || echo "  all found"
fi

step "2. CUDA tests (test_cuda)"
t0=$(date +%s)
timeout 240 "$BUILD/test_cuda" --no-intro > "$LOGDIR/test_cuda.log" 2>&1
rc=$?
grep -E "ERROR|FAILED|error|differ|^\[doctest\] (test cases|assertions|Status)" "$LOGDIR/test_cuda.log" | head -60
echo "test_cuda exit status $rc $(elapsed $t0)"
[ "$rc" -eq 0 ] || FAILED+=("tests")

step "3. compute-sanitizer memcheck (subset)"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
if [ -z "$SAN" ]; then
  echo "compute-sanitizer not found; skipped"
  FAILED+=("memcheck (no compute-sanitizer)")
else
  t0=$(date +%s)
  SUBSET='cuda copy: strided*,cuda binary ops*,cuda reductions large*,cuda gemm: native against*,cuda gemm on tensor cores*,cuda conv2d (native)*,cuda pooling*,cuda batch_norm*,cuda index_select*'
  MINIMA_CUDA_ALLOCATOR=direct timeout 180 "$SAN" --tool memcheck --error-exitcode 99 --print-limit 20 \
    "$BUILD/test_cuda" --no-intro -tc="$SUBSET" > "$LOGDIR/memcheck.log" 2>&1
  rc=$?
  grep -E "ERROR SUMMARY|^\[doctest\] (test cases|assertions)|Invalid|out of bounds" "$LOGDIR/memcheck.log" | head -30
  echo "memcheck exit status $rc $(elapsed $t0)"
  [ "$rc" -eq 0 ] || FAILED+=("memcheck")
fi

step "4. PyTorch peer (same shapes)"
t0=$(date +%s)
timeout 90 python3 - > "$LOGDIR/torch_peer.txt" 2>&1 <<'EOF'
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
x = torch.randn(128, 64, 32, 32, device="cuda")
bn = torch.nn.BatchNorm2d(64).cuda().train()
t = ms(lambda: bn(x))
print(f"torch batch_norm train fwd 128x64x32x32  {t:9.4f} ms")
EOF
rc=$?
cat "$LOGDIR/torch_peer.txt"
echo "peer exit status $rc $(elapsed $t0) (not counted as a failure)"

step "5. minima bench ops"
t0=$(date +%s)
timeout 240 "$BUILD/minima" bench ops --csv "$LOGDIR/bench_ops.csv" > "$LOGDIR/bench_ops.txt" 2> "$LOGDIR/bench_ops.err"
rc=$?
tail -5 "$LOGDIR/bench_ops.err"
echo "bench exit status $rc $(elapsed $t0)"
[ "$rc" -eq 0 ] || FAILED+=("bench")

echo
if [ ${#FAILED[@]} -eq 0 ]; then echo "gpu-check: all steps passed (logs in $LOGDIR)"
else echo "gpu-check: FAILED: ${FAILED[*]} (logs in $LOGDIR)"; fi
echo
cat "$LOGDIR/bench_ops.txt"
exit ${#FAILED[@]}
