// tests/apps/test_bench.cpp: the benchmark commands run end to end on tiny configurations and
// print well-formed tables. Their timings are never asserted (the machines are noisy); only that
// every figure is there, finite and positive, and that bad flags give an error.
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>

#include "tests/apps/app_test_util.h"
#include "torch_peer.h"

using apptest::run_minima;

namespace {
// The numbers after `label` on each line of `text` that contains it, in order.
std::vector<double> numbers_after(const std::string& text, const std::string& label) {
  std::vector<double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find(label);
    if (at == std::string::npos) continue;
    const char* p = line.c_str() + at + label.size();
    while (*p) {
      if (std::isdigit(static_cast<unsigned char>(*p)) ||
          (*p == '.' && std::isdigit(static_cast<unsigned char>(p[1])))) {
        char* end = nullptr;
        out.push_back(std::strtod(p, &end));
        p = end;
      } else {
        ++p;
      }
    }
  }
  return out;
}
}  // namespace

TEST_CASE("bench data: samples/s of each pipeline and its share of a training step") {
  auto r = run_minima("bench data --samples 300 --batch 64 --epochs 1 --step-arch smallcnn");
  INFO(r.output);
  REQUIRE(r.rc == 0);
  for (const char* c :
       {"cpu  normalize only", "cpu  normalize + crop + flip", "cpu  per-image whitening + crop + flip"}) {
    std::vector<double> v = numbers_after(r.output, c);
    REQUIRE(v.size() >= 2);  // samples/s, ms per batch
    CHECK(v[0] > 0);
    CHECK(v[1] > 0);
  }
  // "share of a smallcnn training step (batch 64): P ms pipeline / S ms step = X %"
  std::vector<double> s = numbers_after(r.output, "cpu  share of a smallcnn training step");
  REQUIRE(s.size() == 4);
  CHECK(s[0] == 64);
  CHECK(s[1] > 0);
  CHECK(s[2] > 0);
  CHECK(s[3] == doctest::Approx(100.0 * s[1] / (s[1] + s[2])).epsilon(0.02));
  CHECK(r.output.find("gpu") != std::string::npos);  // the GPU line: figures or why they were skipped

  auto none = run_minima("bench data --samples 200 --epochs 1 --step-arch none");
  CHECK(none.rc == 0);
  CHECK(none.output.find("share of") == std::string::npos);
  auto bad = run_minima("bench data --batch 0");
  CHECK(bad.rc != 0);
  CHECK(bad.output.find("error: bench data: --samples, --batch") != std::string::npos);
}

TEST_CASE("bench train: images/s per network on the CPU, without the PyTorch peer") {
  auto r = run_minima(
      "bench train --device cpu --arch mlp,smallcnn --in 1x28x28 --batch 16 --warmup 0 --iters 1 "
      "--torch off");
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("batch 16, input 1x28x28, device cpu, fp32") != std::string::npos);
  for (const char* arch : {"mlp ", "smallcnn "}) {
    std::istringstream in(r.output);  // lines "<arch>  <minima img/s>  -  -"
    bool found = false;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(arch, 0) != 0) continue;
      found = true;
      double ips = std::stod(line.substr(std::string(arch).size()));
      CHECK(std::isfinite(ips));
      CHECK(ips > 0);
    }
    CHECK_MESSAGE(found, "no line for ", arch);
  }
  // A name longer than 12 characters widens the first column, header included: every row's
  // images/s ends where the header's "minima img/s" does.
  auto wide =
      run_minima("bench train --device cpu --arch mlp,alexnet-small --batch 4 --warmup 0 --iters 1 --torch off");
  INFO(wide.output);
  REQUIRE(wide.rc == 0);
  const size_t header = wide.output.find("arch "), end = wide.output.find("minima img/s", header) + 12;
  REQUIRE(header != std::string::npos);
  const size_t column = end - header;
  CHECK(column == std::string("alexnet-small").size() + 1 + 13);
  for (const char* arch : {"\nmlp ", "\nalexnet-small "}) {
    const size_t row = wide.output.find(arch);
    REQUIRE(row != std::string::npos);
    const std::string line = wide.output.substr(row + 1, wide.output.find('\n', row + 1) - row - 1);
    REQUIRE(line.size() > column);
    CHECK(line[column - 1] != ' ');  // the number's last digit
    CHECK(line[column] == ' ');
  }
  auto amp = run_minima(
      "bench train --device cpu --arch mlp-bn --in 1x28x28 --batch 16 --warmup 0 --iters 1 "
      "--torch off --precision bf16");
  CHECK(amp.rc == 0);
  CHECK(amp.output.find("device cpu, bf16") != std::string::npos);
  CHECK(amp.output.find("\nmlp-bn ") != std::string::npos);
  // --profile: the timed row, then where a profiled step's time goes, entry by entry.
  auto prof = run_minima(
      "bench train --device cpu --arch mlp-bn --in 1x28x28 --batch 16 --warmup 0 --iters 1 "
      "--torch off --profile 2");
  INFO(prof.output);
  CHECK(prof.rc == 0);
  CHECK(prof.output.find("\nmlp-bn ") != std::string::npos);
  CHECK(prof.output.find("2 profiled steps") != std::string::npos);
  for (const char* entry : {"gemm float32", "batch_norm_forward_train float32", "batch_norm_backward float32",
                            "sgd_update float32", "all backend entries", "outside them", "profiled step"})
    CHECK_MESSAGE(prof.output.find("  " + std::string(entry)) != std::string::npos, "no line for ", entry);
  apptest::check_rejects("bench train --device cpu --arch mlp --torch off --profile -1",
                         "--warmup and --profile at least 0");
  auto fp16 = run_minima("bench train --device cpu --arch mlp --torch off --precision fp16");
  CHECK(fp16.rc != 0);
  CHECK(fp16.output.find("error: unknown precision 'fp16'") != std::string::npos);
  auto bad = run_minima("bench train --device cpu --arch nosuchnet --torch off --iters 1 --warmup 0");
  CHECK(bad.rc != 0);
  CHECK(bad.output.find("error:") != std::string::npos);
  auto no_torch =
      run_minima("bench train --device cpu --arch mlp --torch on --iters 1 --warmup 0 --python /nonexistent/python3");
  CHECK(no_torch.rc != 0);
  // The interpreter named is the one tried (it used to say "python3" whatever --python was).
  CHECK(no_torch.output.find("--torch on but /nonexistent/python3 cannot import torch") != std::string::npos);
}

TEST_CASE("bench train: the PyTorch peer's row, with the peer keeping or releasing the memory it frees") {
  apptest::check_rejects("bench train --device cpu --arch mlp --torch off --torch-heap maybe",
                         "--torch-heap must be keep or release, got 'maybe'");
  if (!testutil::torch_available()) {
    MESSAGE("skipped: /usr/bin/python3 cannot import torch");
    return;
  }
  // The twin by itself: with its freed memory kept, a timed step takes (next to) no page faults;
  // with glibc's default, smallcnn's activations at batch 32 (3 MB and more) come back as fresh
  // pages every step. Kept memory still faults now and then, when one step's peak outgrows the
  // heap (a malloc arena of the intra-op thread: 512 to 2,048 pages at once, in some processes and
  // not others), so the count is averaged over ten timed steps, and held to a tenth of the
  // release count (3,200-4,100 a step).
  double faults[2] = {0, 0};
  const char* heaps[2] = {"keep", "release"};
  for (int h = 0; h < 2; ++h) {
    const std::string out =
        testutil::run_peer(std::string("/usr/bin/python3 ") + MINIMA_SOURCE_DIR +
                           "/tests/crosscheck/bench_torch.py smallcnn 3x32x32 10 32 cpu 3 10 2 fp32 "
                           "ieee " +
                           heaps[h]);
    const minima::Json j = minima::Json::parse(out.substr(out.find('{')));
    CHECK(j.at("heap").as_string() == heaps[h]);
    CHECK(j.at("images_per_s").as_double() > 0);
    faults[h] = j.at("page_faults_per_step").as_double();
  }
  INFO("page faults a step: keep ", faults[0], ", release ", faults[1]);
  CHECK(faults[1] > 200);  // 32x32x28x28 floats alone are 784 pages
  CHECK(faults[0] * 10 < faults[1]);
  // Through bench train: the row holds both figures and their ratio, and the header says which.
  // With no warm-up, the timed step is each side's first, which faults in all its pages: the note
  // under the row gives both counts.
  for (const char* heap : {"keep", "release"}) {
    auto r = run_minima(std::string("bench train --device cpu --arch smallcnn --in 1x28x28 --batch 32 --warmup 0 "
                                    "--iters 1 --torch on --python /usr/bin/python3 --torch-heap ") +
                        heap);
    INFO(r.output);
    REQUIRE(r.rc == 0);
    CHECK(r.output.find(std::string("PyTorch ") + (heap == std::string("keep") ? "keeping" : "releasing") +
                        " freed memory") != std::string::npos);
    std::vector<double> v = numbers_after(r.output, "smallcnn ");
    REQUIRE(v.size() == 3);
    for (double x : v) CHECK(x > 0);
    const std::vector<double> minima_faults = numbers_after(r.output, "page faults in a timed step: minima ");
    const std::vector<double> torch_faults = numbers_after(r.output, ", PyTorch ");
    REQUIRE(minima_faults.size() == 2);  // the count, then the PyTorch one after it
    CHECK(minima_faults[0] >= 256);
    REQUIRE(torch_faults.size() == 1);
    CHECK(torch_faults[0] >= 256);
  }
}

TEST_CASE("bench cpu: every CPU kernel family, each row with its figures, and --only picks families") {
  auto r = run_minima("bench cpu --reps 1 --min-time 0 --threads 2 --python ''");
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("PyTorch peer unavailable") != std::string::npos);
  CHECK(r.output.find(" GEMM micro-kernel") != std::string::npos);  // avx2 or avx512, as the CPU allows
  const std::vector<std::string> compute = {"sgemm 256^3 (GFLOP/s)",
                                            "sgemm 512^3 (GFLOP/s)",
                                            "sgemm 1024^3 (GFLOP/s)",
                                            "sgemv A x, 2048^2 (GFLOP/s)",
                                            "sgemv A^T x, 2048^2 (GFLOP/s)",
                                            "conv 128x64x32x32 3x3 fwd (ms)",
                                            "conv 128x64x32x32 3x3 fwd+bwd (ms)",
                                            "conv 128x256x8x8 3x3 fwd (ms)",
                                            "conv 128x256x8x8 3x3 fwd+bwd (ms)"};
  const std::vector<std::string> memory = {"add, 16M (GB/s)",
                                           "relu, 16M (GB/s)",
                                           "exp, 16M (GB/s)",
                                           "relu backward, 16M (GB/s)",
                                           "add [16384,1024]+[1024] (GB/s)",
                                           "sum [16384,1024] last dim (GB/s)",
                                           "sum [16384,1024] first dim (GB/s)",
                                           "sum all, 16M (GB/s)",
                                           "argmax [16384,1024] last dim (GB/s)",
                                           "log_softmax [16384,1000] (GB/s)",
                                           "log_softmax backward (GB/s)",
                                           "batch_norm 128x64x32x32 train fwd (GB/s)",
                                           "batch_norm backward (GB/s)",
                                           "batch_norm eval fwd (GB/s)",
                                           "max_pool2d 2x2 128x64x32x32 (GB/s)",
                                           "max_pool2d backward (GB/s)",
                                           "avg_pool2d 2x2 128x64x32x32 (GB/s)",
                                           "avg_pool2d backward (GB/s)",
                                           "sgd momentum+wd, 11.2M params (GB/s)",
                                           "adam, 11.2M params (GB/s)"};
  for (const std::vector<std::string>* rows : {&compute, &memory})
    for (const std::string& row : *rows) {
      INFO(row);
      std::vector<double> v = numbers_after(r.output, row);
      REQUIRE(v.size() == 1);  // minima's figure; the peer and ratio columns read n/a
      CHECK(std::isfinite(v[0]));
      CHECK(v[0] > 0);
    }
  // --only runs the families named and no other; --no-conv still drops the conv rows.
  auto only = run_minima("bench cpu --reps 1 --min-time 0 --threads 2 --python '' --only reduce,optim,conv --no-conv");
  INFO(only.output);
  REQUIRE(only.rc == 0);
  for (const std::string& row : compute) CHECK(only.output.find(row) == std::string::npos);
  for (const std::string& row : memory) {
    INFO(row);
    const bool wanted = row.rfind("sum ", 0) == 0 || row.rfind("argmax", 0) == 0 || row.rfind("sgd", 0) == 0 ||
                        row.rfind("adam", 0) == 0;
    CHECK((only.output.find(row) != std::string::npos) == wanted);
  }
  apptest::check_rejects("bench cpu --only gemm,bogus",
                         "--only: unknown family 'bogus' (known: gemm, gemv, conv, elementwise, reduce, softmax, "
                         "batchnorm, pool, optim)");
  apptest::check_rejects("bench cpu --only gemm,gemm", "--only: gemm is listed twice");
  apptest::check_rejects("bench cpu --reps 0", "--reps must be in [1, 1000], got 0");
  // --min-time keeps a row's repetitions going: two rows of at least 0.3 s each.
  const auto t0 = std::chrono::steady_clock::now();
  auto timed = run_minima("bench cpu --reps 1 --min-time 0.3 --threads 2 --python '' --only optim");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(timed.rc == 0);
  CHECK(took >= 0.6);
  apptest::check_rejects("bench cpu --min-time -1", "--min-time must be in [0, 60], got -1");
  apptest::check_rejects("bench cpu --min-time nan", "--min-time expects a finite number, got 'nan'");
  apptest::check_rejects("bench cpu --threads 99999999999", "--threads must be in [1, 1024], got 99999999999");
  // MINIMA_CPU_GEMM picks the micro-kernel; a value it does not know is named in a warning.
  auto forced = apptest::run_command(std::string("MINIMA_CPU_GEMM=avx2 ") + MINIMA_BINARY +
                                     " bench cpu --reps 1 --min-time 0 --no-conv --python ''");
  CHECK(forced.rc == 0);
  CHECK(forced.output.find("avx2 GEMM micro-kernel") != std::string::npos);
  auto typo = apptest::run_command(std::string("MINIMA_CPU_GEMM=avx3 ") + MINIMA_BINARY +
                                   " bench cpu --reps 1 --min-time 0 --no-conv --python ''");
  CHECK(typo.rc == 0);
  CHECK(typo.output.find("warning: MINIMA_CPU_GEMM=avx3 is not one of auto, avx2") != std::string::npos);
}

TEST_CASE("bench cpu: the PyTorch peer's rows, with OpenBLAS told the widest kernels the CPU runs") {
  if (!testutil::torch_available()) {
    MESSAGE("skipped: /usr/bin/python3 cannot import torch");
    return;
  }
  // Debian's OpenBLAS takes its generic kernels on a CPU model it does not know; the peer is
  // started with OPENBLAS_CORETYPE naming the AVX-512 (or AVX2) kernels, unless it is set already.
  __builtin_cpu_init();
  const std::string want = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                           : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                             : "";
  for (const char* env : {"env -u OPENBLAS_CORETYPE ", "OPENBLAS_CORETYPE=Haswell "}) {
    INFO(env);
    auto r = apptest::run_command(std::string(env) + MINIMA_BINARY + " bench cpu --reps 1 --min-time 0 --only gemv");
    INFO(r.output);
    REQUIRE(r.rc == 0);
    const bool chosen = std::string(env).rfind("env", 0) == 0 && !want.empty();
    CHECK((r.output.find("PyTorch peer in the same run with OPENBLAS_CORETYPE=" + want) != std::string::npos) ==
          chosen);
    CHECK(r.output.find("PyTorch peer in the same run") != std::string::npos);
    for (const char* row : {"sgemv A x, 2048^2 (GFLOP/s)", "sgemv A^T x, 2048^2 (GFLOP/s)"}) {
      std::vector<double> v = numbers_after(r.output, row);
      REQUIRE(v.size() == 3);  // minima's figure, the peer's and their ratio
      for (double x : v) CHECK(x > 0);
    }
  }
}

TEST_CASE("bench and the bare command line: a missing or bad name is an error, --help is not") {
  apptest::check_rejects("bench train --device cpu --arch '' --torch off", "--arch needs at least one architecture");
  apptest::check_rejects("bench train --device cpu --arch mlp,nosuchnet --torch off",
                         "unknown architecture 'nosuchnet'");
  apptest::check_rejects("bench train --device cpu --arch mlp,smallcnn,mlp --torch off", "--arch: mlp is listed twice");
  apptest::check_rejects("bench train --device cpu --arch mlp --torch maybe", "--torch must be auto, on or off");
  // 2^32 repetitions used to be cut to an int of 0: no timed run, and a best time of 1e30 s.
  apptest::check_rejects("bench cpu --reps 4294967296 --python '' --no-conv",
                         "--reps must be in [1, 1000], got 4294967296");
  apptest::check_rejects("bench ops --reps 4294967296", "--reps must be in [1, 1000], got 4294967296");
  apptest::check_rejects("bench train --device cpu --arch mlp --torch off --in 1xax28", "--in expects CxHxW");
  apptest::check_rejects("", "no command given");
  apptest::check_rejects("bench", "no benchmark named");
  apptest::check_rejects("bench --bogus", "expected a benchmark name before the flags, got '--bogus'");
  for (const char* help : {"--help", "bench --help"}) {
    auto r = run_minima(help);
    CHECK(r.rc == 0);
    CHECK(r.output.find("error:") == std::string::npos);
  }
}

TEST_CASE("an OMP_NUM_THREADS beyond --threads' bound is refused before any command runs") {
  // libgomp crashed (SIGSEGV in the first parallel region) when asked for 100,000 threads.
  const std::string models = std::string(MINIMA_BINARY) + " models --arch mlp --in 1x28x28";
  for (const char* bad : {"100000", "2,100000", "1025"}) {
    INFO(bad);
    for (const std::string& cmd :
         {models, std::string(MINIMA_BINARY) + " bench cpu --reps 1 --min-time 0 --no-conv --python ''"}) {
      auto r = apptest::run_command("OMP_NUM_THREADS='" + std::string(bad) + "' " + cmd);
      INFO(r.output);
      CHECK(r.rc != 0);
      CHECK(r.output.find("error: OMP_NUM_THREADS=" + std::string(bad) + ": at most 1024 threads") !=
            std::string::npos);
    }
  }
  for (const char* fine : {"1024", "2,1", " 2 "}) {
    INFO(fine);
    auto r = apptest::run_command("OMP_NUM_THREADS='" + std::string(fine) + "' " + models);
    INFO(r.output);
    CHECK(r.rc == 0);
    CHECK(r.output.find("mlp") != std::string::npos);
  }
}
