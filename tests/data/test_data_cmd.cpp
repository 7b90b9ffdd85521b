// tests/data/test_data_cmd.cpp: `minima data` end to end on a small IDX dataset written here: the
// printed counts, shape, classes and statistics, and a clean non-zero exit on a missing directory
// or a bad flag.
#include <sys/wait.h>

#include <cstdio>

#include "data/dataset.h"
#include "helpers.h"
#include "run_command.h"

using testdata::contains;

namespace {

// Runs a shell command; returns its exit status and stdout+stderr.
int run(const std::string& cmd, std::string& out) {
  const testutil::Run r = testutil::run_command(cmd);
  out = r.output;
  return WIFEXITED(r.rc) ? WEXITSTATUS(r.rc) : -1;
}

}  // namespace

TEST_CASE("minima data: prints splits, shape, classes and the training statistics") {
  testdata::TempDir t;
  std::vector<uint8_t> px(6 * 2 * 3), y(6);
  for (size_t k = 0; k < px.size(); ++k) px[k] = k % 2 ? 255 : 0;  // mean 0.5, std 0.5
  for (size_t k = 0; k < y.size(); ++k) y[k] = uint8_t(k % 3);
  testdata::write_file(t / "train-images-idx3-ubyte", testdata::idx_bytes({6, 2, 3}, px));
  testdata::write_file(t / "train-labels-idx1-ubyte.gz", testdata::gzip_bytes(testdata::idx_bytes({6}, y)));
  testdata::write_file(t / "t10k-images-idx3-ubyte", testdata::idx_bytes({1, 2, 3}, std::vector<uint8_t>(6, 9)));
  testdata::write_file(t / "t10k-labels-idx1-ubyte", testdata::idx_bytes({1}, {4}));
  std::string out;
  int rc = run(std::string(MINIMA_BINARY) + " data --dataset mnist --data-dir " + t.path(), out);
  CHECK(rc == 0);
  CHECK(contains(out, "train  "));
  CHECK(contains(out, " 6 images  (per class: 0..2)"));
  CHECK(contains(out, " 1 images  (per class: 0..1)"));
  CHECK(contains(out, "image shape 1 x 2 x 3"));
  CHECK(contains(out, "10 classes"));
  CHECK(contains(out, "training mean (pixel/255): 0.5000"));
  CHECK(contains(out, "training std  (pixel/255): 0.5000"));

  rc = run(std::string(MINIMA_BINARY) + " data --dataset cifar10 --data-dir " + t.path() + "/missing", out);
  CHECK(rc == 1);
  CHECK(contains(out, "error: cifar10: data directory"));
  CHECK(contains(out, "data_batch_1.bin"));

  rc = run(std::string(MINIMA_BINARY) + " data --dataset mnist --threads -1 --data-dir " + t.path(), out);
  CHECK(rc == 1);
  CHECK(contains(out, "error: --threads must be in [0, 1024], got -1"));
  // Used to be cast to an int (1 thread) and run.
  rc = run(std::string(MINIMA_BINARY) + " data --dataset mnist --threads 4294967297 --data-dir " + t.path(), out);
  CHECK(rc == 1);
  CHECK(contains(out, "error: --threads must be in [0, 1024], got 4294967297"));
  // Flags of other datasets used to be accepted and ignored.
  auto only_for = [&](const std::string& flag, const std::string& expected) {
    rc = run(std::string(MINIMA_BINARY) + " data --dataset mnist " + flag + " --data-dir " + t.path(), out);
    INFO(flag, ": ", out);
    CHECK(rc == 1);
    CHECK(contains(out, "error: " + expected + ", not to mnist"));
  };
  only_for("--image-size -5", "--image-size applies to restricted-imagenet only");
  only_for("--coarse-labels", "--coarse-labels applies to cifar100 only");
  only_for("--merge-valid", "--merge-valid applies to cinic10 only");
  only_for("--cache-dir " + t.path(), "--cache-dir applies to the folder datasets (cinic10, restricted-imagenet) only");
  only_for("--threads 2", "--threads applies to the folder datasets (cinic10, restricted-imagenet) only");
}

TEST_CASE("minima data on cifar10 prints the official normalization constants beside the computed ones") {
  testdata::TempDir t;
  for (const char* f : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                        "data_batch_5.bin", "test_batch.bin"}) {
    std::vector<uint8_t> rec(2 * 3073, 0);  // two records: label 3, then pixels 0, 255, 0, ...
    rec[0] = rec[3073] = 3;
    for (size_t k = 0; k < rec.size(); ++k)
      if (k % 3073 != 0) rec[k] = k % 3073 % 2 ? 0 : 255;
    testdata::write_file(t / f, rec);
  }
  std::string out;
  int rc = run(std::string(MINIMA_BINARY) + " data --dataset cifar10 --data-dir " + t.path(), out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(contains(out, "training mean (pixel/255): 0.5000, 0.5000, 0.5000"));
  CHECK(contains(out, "training std  (pixel/255): 0.5000, 0.5000, 0.5000"));
  CHECK(contains(out, "mean 0.4914, 0.4822, 0.4465, std 0.2023, 0.1994, 0.2010"));
}

TEST_CASE("train and eval take the loading flags: cifar100 --coarse-labels trains 20 classes, eval loads it so") {
  testdata::TempDir t;
  std::vector<uint8_t> train, test;
  const auto px = testdata::pattern(size_t(36 * 3072), 11);
  for (int r = 0; r < 36; ++r) {
    std::vector<uint8_t>& b = r < 30 ? train : test;  // five training records per test record
    b.push_back(uint8_t(r % 20));                     // coarse
    b.push_back(uint8_t((r * 7) % 100));              // fine
    b.insert(b.end(), px.begin() + r * 3072, px.begin() + (r + 1) * 3072);
  }
  testdata::write_file(t / "train.bin", train);
  testdata::write_file(t / "test.bin", test);
  const std::string bin = MINIMA_BINARY, data = " --dataset cifar100 --data-dir " + t.path();
  std::string out;
  int rc =
      run(bin + " train --arch mlp --epochs 1 --batch 16 --threads 1 --coarse-labels" + data + " --out " + (t / "run"),
          out);
  INFO(out);
  REQUIRE(rc == 0);
  const std::string weights = t / "run/final.safetensors";
  rc = run(bin + " inspect --file " + weights, out);
  CHECK(rc == 0);
  CHECK(contains(out, "labels"));
  CHECK(contains(out, "coarse"));
  // eval takes the dataset and the coarse labels from the file (with the 100 fine labels it would
  // refuse the network's 20 outputs).
  rc = run(bin + " eval --device cpu --weights " + weights + " --data-dir " + t.path(), out);
  CHECK(rc == 0);
  CHECK(contains(out, "\"dataset\": \"cifar100\""));
  CHECK(contains(out, "\"samples\": 6"));
  // The loading flags are refused where they would be ignored, in every command that loads data.
  for (const std::string& cmd : {"train --epochs 1 --out " + (t / "x"), "eval --weights " + weights,
                                 "adversarial-init --out " + (t / "y"), "randomization --out " + (t / "z")}) {
    rc = run(bin + " " + cmd + " --dataset fashion-mnist --coarse-labels", out);
    CHECK(rc == 1);
    CHECK(contains(out, "error: --coarse-labels applies to cifar100 only, not to fashion-mnist"));
    rc = run(bin + " " + cmd + " --dataset cifar100 --data-dir " + t.path() + " --image-size 32", out);
    CHECK(rc == 1);
    CHECK(contains(out, "error: --image-size applies to restricted-imagenet only, not to cifar100"));
  }
}
