// tests/data/test_cifar.cpp: CIFAR-10 and CIFAR-100 binary loaders on small files in the exact
// record formats, and their error paths.
#include "data/dataset.h"
#include "helpers.h"

using namespace minima;
using namespace minima::data;
using testdata::contains;
using testdata::error_of;

namespace {

const char* kCifar10Files[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};

// Writes the six CIFAR-10 files with `per` records each into `dir`; returns all records in order.
std::vector<std::vector<uint8_t>> write_cifar10(const std::string& dir, int per) {
  std::vector<std::vector<uint8_t>> files;
  for (int f = 0; f < 6; ++f) {
    std::vector<uint8_t> b;
    auto px = testdata::pattern(size_t(per) * 3072, uint32_t(100 + f));
    for (int r = 0; r < per; ++r) {
      b.push_back(uint8_t((f * per + r) % 10));
      b.insert(b.end(), px.begin() + r * 3072, px.begin() + (r + 1) * 3072);
    }
    testdata::write_file(dir + "/" + kCifar10Files[f], b);
    files.push_back(b);
  }
  return files;
}

}  // namespace

TEST_CASE("cifar10: records load as CHW pixels with their labels, from DIR or DIR/cifar-10-batches-bin") {
  testdata::TempDir t;
  for (bool sub : {false, true}) {
    std::string dir = t.path();
    if (sub) {
      dir = t / "cifar-10-batches-bin";
      make_dirs(dir);
    }
    auto files = write_cifar10(dir, 3);
    Splits s = load_dataset("cifar10", t.path());
    REQUIRE(s.train.size() == 15);
    REQUIRE(s.test.size() == 3);
    CHECK(s.train.images.shape() == Shape{15, 3, 32, 32});
    CHECK(s.train.class_names[0] == "airplane");
    auto x = s.train.images.to_vector<uint8_t>();
    auto y = s.train.labels.to_vector<int64_t>();
    for (int f = 0; f < 5; ++f)
      for (int r = 0; r < 3; ++r) {
        const int i = f * 3 + r;
        CHECK(y[size_t(i)] == files[size_t(f)][size_t(r * 3073)]);
        CHECK(std::equal(x.begin() + i * 3072, x.begin() + (i + 1) * 3072, files[size_t(f)].begin() + r * 3073 + 1));
      }
    auto xt = s.test.images.to_vector<uint8_t>();
    CHECK(std::equal(xt.begin(), xt.begin() + 3072, files[5].begin() + 1));
    CHECK(s.train.mean.size() == 3);
    CHECK(s.test.std == s.train.std);
    if (sub) break;
    for (const char* f : kCifar10Files) std::remove((t / f).c_str());
  }
}

TEST_CASE("cifar10: class names come from batches.meta.txt when present") {
  testdata::TempDir t;
  write_cifar10(t.path(), 1);
  std::string names = "a0\nb1\nc2\nd3\ne4\nf5\ng6\nh7\ni8\nj9\n\n";
  testdata::write_file(t / "batches.meta.txt", std::vector<uint8_t>(names.begin(), names.end()));
  Splits s = load_dataset("cifar10", t.path());
  CHECK(s.train.class_names[3] == "d3");
}

TEST_CASE("cifar10: missing, truncated, mismatched and mislabelled files are reported") {
  testdata::TempDir t;
  CHECK(contains(error_of([&] { load_dataset("cifar10", t / "nope"); }), "cifar-10-binary.tar.gz"));
  auto files = write_cifar10(t.path(), 2);
  SUBCASE("missing file") {
    std::remove((t / "data_batch_4.bin").c_str());
    std::string e = error_of([&] { load_dataset("cifar10", t.path()); });
    CHECK(contains(e, "data_batch_4.bin"));
    CHECK(contains(e, "3073-byte records"));
  }
  SUBCASE("truncated inside a record") {
    auto b = files[2];
    b.resize(b.size() - 100);
    testdata::write_file(t / "data_batch_3.bin", b);
    std::string e = error_of([&] { load_dataset("cifar10", t.path()); });
    CHECK(contains(e, t / "data_batch_3.bin"));
    CHECK(contains(e, "byte offset 3073"));
    CHECK(contains(e, "truncated"));
  }
  SUBCASE("truncated at a record boundary") {
    auto b = files[4];
    b.resize(3073);
    testdata::write_file(t / "data_batch_5.bin", b);
    std::string e = error_of([&] { load_dataset("cifar10", t.path()); });
    CHECK(contains(e, "mismatched counts"));
    CHECK(contains(e, "data_batch_5.bin holds 1 records"));
  }
  SUBCASE("label out of range") {
    auto b = files[5];
    b[3073] = 10;
    testdata::write_file(t / "test_batch.bin", b);
    std::string e = error_of([&] { load_dataset("cifar10", t.path()); });
    CHECK(contains(e, "test_batch.bin"));
    CHECK(contains(e, "label 10 at byte offset 3073"));
  }
  SUBCASE("empty file") {
    testdata::write_file(t / "data_batch_1.bin", {});
    CHECK(contains(error_of([&] { load_dataset("cifar10", t.path()); }), "empty file"));
  }
}

TEST_CASE("cifar100: fine labels by default, coarse on request, errors") {
  testdata::TempDir t;
  const std::string dir = t / "cifar-100-binary";
  make_dirs(dir);
  std::vector<uint8_t> train, test;
  auto px = testdata::pattern(size_t(12 * 3072), 7);
  for (int r = 0; r < 12; ++r) {
    std::vector<uint8_t>& b = r < 10 ? train : test;
    b.push_back(uint8_t(r % 20));         // coarse
    b.push_back(uint8_t((r * 9) % 100));  // fine
    b.insert(b.end(), px.begin() + r * 3072, px.begin() + (r + 1) * 3072);
  }
  testdata::write_file(dir + "/train.bin", train);
  testdata::write_file(dir + "/test.bin", test);
  Splits fine = load_dataset("cifar100", t.path());
  CHECK(fine.train.size() == 10);
  CHECK(fine.test.size() == 2);
  CHECK(fine.train.num_classes == 100);
  CHECK(fine.train.class_names[99] == "worm");
  auto yf = fine.train.labels.to_vector<int64_t>();
  for (int r = 0; r < 10; ++r) CHECK(yf[size_t(r)] == (r * 9) % 100);
  auto x = fine.test.images.to_vector<uint8_t>();
  CHECK(std::equal(x.begin(), x.end(), px.begin() + 10 * 3072));
  LoadOptions o;
  o.coarse_labels = true;
  Splits coarse = load_dataset("cifar100", t.path(), o);
  CHECK(coarse.train.num_classes == 20);
  CHECK(coarse.train.class_names[0] == "aquatic_mammals");
  CHECK(coarse.test.labels.to_vector<int64_t>() == std::vector<int64_t>{10, 11});
  // Errors: a fine label over 99, then a train/test count mismatch.
  auto bad = test;
  bad[3074 + 1] = 100;
  testdata::write_file(dir + "/test.bin", bad);
  std::string e = error_of([&] { load_dataset("cifar100", t.path()); });
  CHECK(contains(e, "label 100 at byte offset 3075"));
  test.resize(3074);
  testdata::write_file(dir + "/test.bin", test);
  e = error_of([&] { load_dataset("cifar100", t.path()); });
  CHECK(contains(e, "mismatched counts"));
  CHECK(contains(error_of([&] { load_dataset("cifar100", t / "none"); }), "cifar-100-binary.tar.gz"));
}
