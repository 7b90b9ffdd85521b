// tests/data/test_idx.cpp: the MNIST/Fashion-MNIST IDX loader on small files written here in the
// exact format (gzipped and raw), its error paths, and the real Fashion-MNIST files when installed.
#include <cmath>

#include "data/dataset.h"
#include "data/io.h"
#include "helpers.h"

using namespace minima;
using namespace minima::data;
using testdata::contains;
using testdata::error_of;

namespace {

struct IdxFixture {
  testdata::TempDir dir;
  int64_t ntrain = 7, ntest = 3, h = 5, w = 4;
  std::vector<uint8_t> train_px, test_px, train_y, test_y;
  IdxFixture(bool gz_train = true, bool gz_test = false) {
    train_px = testdata::pattern(size_t(ntrain * h * w), 1);
    test_px = testdata::pattern(size_t(ntest * h * w), 2);
    for (int64_t i = 0; i < ntrain; ++i) train_y.push_back(uint8_t((i * 3 + 1) % 10));
    for (int64_t i = 0; i < ntest; ++i) test_y.push_back(uint8_t((i * 7 + 2) % 10));
    write("train-images-idx3-ubyte", testdata::idx_bytes({uint32_t(ntrain), uint32_t(h), uint32_t(w)}, train_px),
          gz_train);
    write("train-labels-idx1-ubyte", testdata::idx_bytes({uint32_t(ntrain)}, train_y), gz_train);
    write("t10k-images-idx3-ubyte", testdata::idx_bytes({uint32_t(ntest), uint32_t(h), uint32_t(w)}, test_px), gz_test);
    write("t10k-labels-idx1-ubyte", testdata::idx_bytes({uint32_t(ntest)}, test_y), gz_test);
  }
  void write(const std::string& name, const std::vector<uint8_t>& raw, bool gz) {
    testdata::write_file(dir / (name + (gz ? ".gz" : "")), gz ? testdata::gzip_bytes(raw) : raw);
  }
};

}  // namespace

TEST_CASE("idx: gzipped and raw files load with exact pixels, labels and statistics") {
  IdxFixture f(true, false);
  Splits s = load_dataset("fashion-mnist", f.dir.path());
  REQUIRE(s.train.size() == f.ntrain);
  REQUIRE(s.test.size() == f.ntest);
  CHECK(s.train.images.shape() == Shape{f.ntrain, 1, f.h, f.w});
  CHECK(s.train.images.dtype() == DType::u8);
  CHECK(s.train.num_classes == 10);
  CHECK(s.train.class_names.size() == 10);
  CHECK(s.train.class_names[9] == "Ankle boot");
  CHECK(s.train.name == "fashion-mnist/train");
  CHECK(s.test.name == "fashion-mnist/test");
  CHECK(s.train.images.to_vector<uint8_t>() == f.train_px);
  CHECK(s.test.images.to_vector<uint8_t>() == f.test_px);
  auto ytr = s.train.labels.to_vector<int64_t>();
  for (int64_t i = 0; i < f.ntrain; ++i) CHECK(ytr[size_t(i)] == f.train_y[size_t(i)]);
  auto yte = s.test.labels.to_vector<int64_t>();
  for (int64_t i = 0; i < f.ntest; ++i) CHECK(yte[size_t(i)] == f.test_y[size_t(i)]);
  // Mean/std of the training pixels / 255, computed independently here; copied to the test split.
  double m = 0, v = 0;
  for (uint8_t p : f.train_px) m += p / 255.0;
  m /= double(f.train_px.size());
  for (uint8_t p : f.train_px) v += (p / 255.0 - m) * (p / 255.0 - m);
  v /= double(f.train_px.size());
  REQUIRE(s.train.mean.size() == 1);
  CHECK(s.train.mean[0] == doctest::Approx(m).epsilon(1e-12));
  CHECK(s.train.std[0] == doctest::Approx(std::sqrt(v)).epsilon(1e-10));
  CHECK(s.test.mean == s.train.mean);
  CHECK(s.test.std == s.train.std);
}

TEST_CASE("idx: mnist accepts the dotted file names and raw files") {
  IdxFixture f(false, false);
  REQUIRE(std::rename((f.dir / "train-images-idx3-ubyte").c_str(), (f.dir / "train-images.idx3-ubyte").c_str()) == 0);
  Splits s = load_dataset("mnist", f.dir.path());
  CHECK(s.train.size() == f.ntrain);
  CHECK(s.train.class_names[3] == "3");
  CHECK(s.train.images.to_vector<uint8_t>() == f.train_px);
}

TEST_CASE("idx: a missing directory names the expected layout and the source") {
  std::string e = error_of([] { load_dataset("fashion-mnist", "/nonexistent/minima/fm"); });
  CHECK(contains(e, "/nonexistent/minima/fm"));
  CHECK(contains(e, "does not exist"));
  CHECK(contains(e, "train-images-idx3-ubyte"));
  CHECK(contains(e, "dataset-fashion-mnist"));
  e = error_of([] { load_dataset("mnist", "/nonexistent/minima/mnist"); });
  CHECK(contains(e, "t10k-labels-idx1-ubyte"));
  CHECK(contains(e, "mnist"));
  // A file where the directory should be is named as such, not as missing (every loader shares
  // the check).
  testdata::TempDir t;
  testdata::write_file(t / "afile", std::vector<uint8_t>{1});
  for (const char* name : {"mnist", "cifar10", "cifar100", "cinic10", "restricted-imagenet"}) {
    CAPTURE(name);
    e = error_of([&] { load_dataset(name, t / "afile"); });
    CHECK(contains(e, std::string(name) + ": data directory " + (t / "afile") + " is not a directory; "));
  }
}

TEST_CASE("idx: a missing file is named") {
  IdxFixture f;
  REQUIRE(std::remove((f.dir / "t10k-labels-idx1-ubyte").c_str()) == 0);
  std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
  CHECK(contains(e, "t10k-labels-idx1-ubyte"));
  CHECK(contains(e, f.dir.path()));
}

TEST_CASE("idx: wrong magic, truncation, trailing bytes and bad labels name the file and offset") {
  IdxFixture f;
  const std::string im = f.dir / "t10k-images-idx3-ubyte";
  auto good = testdata::idx_bytes({uint32_t(f.ntest), uint32_t(f.h), uint32_t(f.w)}, f.test_px);

  SUBCASE("wrong magic") {
    auto b = good;
    b[3] = 1;  // claims one dimension
    testdata::write_file(im, b);
    std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
    CHECK(contains(e, im));
    CHECK(contains(e, "magic"));
    CHECK(contains(e, "byte offset 0"));
    CHECK(contains(e, "0x00000803"));
    CHECK(contains(e, "0x00000801"));
  }
  SUBCASE("truncated data") {
    auto b = good;
    b.resize(b.size() - 5);
    testdata::write_file(im, b);
    std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
    CHECK(contains(e, im));
    CHECK(contains(e, "truncated"));
    CHECK(contains(e, "byte offset " + std::to_string(b.size())));
  }
  SUBCASE("truncated header") {
    auto b = good;
    b.resize(9);
    testdata::write_file(im, b);
    std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
    CHECK(contains(e, "truncated IDX header"));
  }
  SUBCASE("trailing bytes") {
    auto b = good;
    b.push_back(7);
    testdata::write_file(im, b);
    std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
    CHECK(contains(e, "trailing"));
    CHECK(contains(e, "byte offset " + std::to_string(good.size())));
  }
  SUBCASE("label out of range") {
    auto y = f.test_y;
    y[2] = 11;
    testdata::write_file(f.dir / "t10k-labels-idx1-ubyte", testdata::idx_bytes({uint32_t(f.ntest)}, y));
    std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
    CHECK(contains(e, "label 11"));
    CHECK(contains(e, "byte offset 10"));  // 8-byte header + index 2
  }
  SUBCASE("mismatched counts") {
    auto y = f.test_y;
    y.push_back(1);
    testdata::write_file(f.dir / "t10k-labels-idx1-ubyte", testdata::idx_bytes({uint32_t(f.ntest + 1)}, y));
    std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
    CHECK(contains(e, "mismatched counts"));
    CHECK(contains(e, std::to_string(f.ntest) + " images"));
    CHECK(contains(e, std::to_string(f.ntest + 1) + " labels"));
  }
}

TEST_CASE("idx: truncated and corrupt gzip files are reported with their compressed offset") {
  IdxFixture f;
  const std::string gz = f.dir / "train-images-idx3-ubyte.gz";
  auto good = testdata::gzip_bytes(testdata::idx_bytes({uint32_t(f.ntrain), uint32_t(f.h), uint32_t(f.w)}, f.train_px));
  SUBCASE("truncated") {
    auto b = good;
    b.resize(b.size() / 2);
    testdata::write_file(gz, b);
    std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
    CHECK(contains(e, gz));
    CHECK(contains(e, "truncated gzip"));
    CHECK(contains(e, "byte offset " + std::to_string(b.size())));
  }
  SUBCASE("corrupt") {
    auto b = good;
    for (size_t k = 12; k < b.size() - 8; ++k) b[k] ^= 0x5a;  // scramble the deflate stream
    testdata::write_file(gz, b);
    std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
    CHECK(contains(e, gz));
    CHECK(contains(e, "gzip"));
    CHECK(contains(e, "offset"));
  }
  SUBCASE("inflating far past what its header accounts for") {
    // 64 MiB of zeros after valid content compress to about 64 KiB; the loader stops inflating
    // one byte past the size the header gives, instead of inflating everything first.
    auto raw = testdata::idx_bytes({uint32_t(f.ntrain), uint32_t(f.h), uint32_t(f.w)}, f.train_px);
    const size_t expected = raw.size();
    raw.resize(raw.size() + (size_t(64) << 20), 0);
    auto b = testdata::gzip_bytes(raw);
    CHECK(b.size() < (size_t(1) << 20));
    testdata::write_file(gz, b);
    std::string e = error_of([&] { load_dataset("fashion-mnist", f.dir.path()); });
    CHECK(contains(e, gz));
    CHECK(contains(e, "decompresses to more than " + std::to_string(expected) + " bytes"));
    // The header alone is inflated with a prefix read.
    CHECK(gunzip(b, "x", 16, /*prefix=*/true).size() == 16);
    CHECK(gunzip(good, "x", 16, /*prefix=*/true) == std::vector<uint8_t>(raw.begin(), raw.begin() + 16));
  }
}

TEST_CASE("idx: an unknown dataset name lists the known ones") {
  std::string e = error_of([] { load_dataset("imagenet-22k", ""); });
  CHECK(contains(e, "unknown dataset"));
  CHECK(contains(e, "cifar10"));
}

static const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

TEST_CASE("idx: the real Fashion-MNIST files (needs the dataset-fashion-mnist package, else skipped)" *
          doctest::skip(!is_file(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz"))) {
  // Skipped when the Debian package dataset-fashion-mnist is not installed.
  Splits s = load_dataset("fashion-mnist", "");
  CHECK(s.train.size() == 60000);
  CHECK(s.test.size() == 10000);
  CHECK(s.train.images.shape() == Shape{60000, 1, 28, 28});
  CHECK(std::abs(s.train.mean[0] - 0.2860) < 5e-5);
  CHECK(std::abs(s.train.std[0] - 0.3530) < 5e-5);
  // Every class appears 6,000 times in the training set and 1,000 times in the test set.
  std::vector<int64_t> ctr(10, 0), cte(10, 0);
  for (int64_t y : s.train.labels.to_vector<int64_t>()) ctr[size_t(y)]++;
  for (int64_t y : s.test.labels.to_vector<int64_t>()) cte[size_t(y)]++;
  CHECK(ctr == std::vector<int64_t>(10, 6000));
  CHECK(cte == std::vector<int64_t>(10, 1000));
}
