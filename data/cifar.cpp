// data/cifar.cpp: CIFAR-10 and CIFAR-100 from their binary versions. A CIFAR-10 record is one
// label byte then 3072 pixel bytes (the red, green and blue 32x32 planes, row-major), i.e.
// already CHW; a CIFAR-100 record has a coarse and a fine label byte before the pixels.
// Record counts are cross-checked between files (every CIFAR-10 batch holds the same number of
// records; CIFAR-100's train.bin holds five times test.bin's), so a file cut exactly at a record
// boundary is still reported instead of silently loading fewer images.
#include <cstring>

#include "core/error.h"
#include "data/dataset.h"
#include "data/io.h"

namespace minima::data {

namespace {

constexpr int64_t kPixels = 3 * 32 * 32;

struct RecordFile {
  std::string path;
  std::vector<uint8_t> bytes;
  int64_t records = 0;
};

RecordFile read_records(const std::string& path, int64_t record_size) {
  RecordFile f;
  f.path = path;
  f.bytes = read_bytes(path);
  int64_t n = int64_t(f.bytes.size());
  MINIMA_CHECK(n > 0, path, ": empty file, expected ", record_size, "-byte records");
  MINIMA_CHECK(n % record_size == 0, path, ": truncated or corrupt: ", n, " bytes is not a multiple of the ",
               record_size, "-byte record size; the last complete record ends at byte offset ",
               n / record_size * record_size, " and ", n % record_size, " bytes follow it");
  f.records = n / record_size;
  return f;
}

// Copies records into images/labels starting at sample `at`; label_byte selects which label.
void unpack(const RecordFile& f, int64_t record_size, int64_t label_byte, int64_t num_classes, uint8_t* images,
            int64_t* labels, int64_t at) {
  for (int64_t r = 0; r < f.records; ++r) {
    const uint8_t* rec = f.bytes.data() + r * record_size;
    uint8_t y = rec[label_byte];
    MINIMA_CHECK(y < num_classes, f.path, ": label ", int(y), " at byte offset ", r * record_size + label_byte,
                 " (record ", r, ") is outside 0..", num_classes - 1);
    labels[at + r] = y;
    std::memcpy(images + (at + r) * kPixels, rec + (record_size - kPixels), size_t(kPixels));
  }
}

Dataset make_split(const std::string& name, const std::vector<RecordFile>& files, int64_t record_size,
                   int64_t label_byte, int64_t num_classes) {
  int64_t n = 0;
  for (const auto& f : files) n += f.records;
  Dataset ds;
  ds.name = name;
  ds.num_classes = num_classes;
  ds.images = empty({n, 3, 32, 32}, DType::u8);
  ds.labels = empty({n}, DType::i64);
  int64_t at = 0;
  for (const auto& f : files) {
    unpack(f, record_size, label_byte, num_classes, ds.images.data<uint8_t>(), ds.labels.data<int64_t>(), at);
    at += f.records;
  }
  return ds;
}

// `dir` itself, or its sub-folder `sub` (the archive's top folder) when the files are there.
std::string resolve(const std::string& dir, const std::string& sub, const std::string& probe) {
  if (is_file(join_path(dir, probe))) return dir;
  if (is_file(join_path(join_path(dir, sub), probe))) return join_path(dir, sub);
  return dir;
}

// Class names from the archive's text file when present (one per line), else the built-in list.
std::vector<std::string> names_from(const std::string& path, const std::vector<std::string>& builtin) {
  if (!is_file(path)) return builtin;
  std::vector<uint8_t> b = read_bytes(path);
  std::vector<std::string> out;
  std::string cur;
  for (uint8_t c : b) {
    if (c == '\n' || c == '\r') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += char(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out.size() == builtin.size() ? out : builtin;
}

}  // namespace

Splits load_cifar10(const std::string& dir_in) {
  const std::string layout =
      "expected data_batch_1.bin .. data_batch_5.bin and test_batch.bin (3073-byte records), as in the "
      "folder cifar-10-batches-bin of https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
  require_data_dir("cifar10", dir_in, layout);
  std::string dir = resolve(dir_in, "cifar-10-batches-bin", "data_batch_1.bin");
  const int64_t rs = 1 + kPixels;
  std::vector<RecordFile> train, test;
  std::vector<std::string> names = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                    "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
  for (const auto& n : names) {
    std::string p = join_path(dir, n);
    MINIMA_CHECK(is_file(p), "cifar10: missing ", p, "; ", layout);
  }
  for (size_t i = 0; i < names.size(); ++i) {
    RecordFile f = read_records(join_path(dir, names[i]), rs);
    const RecordFile& first = i == 0 ? f : train[0];
    MINIMA_CHECK(f.records == first.records, "cifar10: mismatched counts: ", f.path, " holds ", f.records,
                 " records but ", first.path, " holds ", first.records,
                 " (every batch file of the binary version holds the same number); truncated at byte offset ",
                 f.bytes.size(), "?");
    (i < 5 ? train : test).push_back(std::move(f));
  }
  Splits s;
  s.train = make_split("cifar10/train", train, rs, 0, 10);
  s.test = make_split("cifar10/test", test, rs, 0, 10);
  s.train.class_names = s.test.class_names = names_from(join_path(dir, "batches.meta.txt"), cifar10_classes());
  channel_stats(s.train.images, s.train.mean, s.train.std);
  s.test.mean = s.train.mean;
  s.test.std = s.train.std;
  return s;
}

Splits load_cifar100(const std::string& dir_in, bool coarse) {
  const std::string layout =
      "expected train.bin and test.bin (3074-byte records: coarse label, fine label, 3072 pixels), as in the "
      "folder cifar-100-binary of https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz";
  require_data_dir("cifar100", dir_in, layout);
  std::string dir = resolve(dir_in, "cifar-100-binary", "train.bin");
  for (const char* n : {"train.bin", "test.bin"})
    MINIMA_CHECK(is_file(join_path(dir, n)), "cifar100: missing ", join_path(dir, n), "; ", layout);
  const int64_t rs = 2 + kPixels;
  std::vector<RecordFile> train, test;
  train.push_back(read_records(join_path(dir, "train.bin"), rs));
  test.push_back(read_records(join_path(dir, "test.bin"), rs));
  MINIMA_CHECK(train[0].records == 5 * test[0].records, "cifar100: mismatched counts: ", train[0].path, " holds ",
               train[0].records, " records and ", test[0].path, " holds ", test[0].records,
               " (the binary version has five times as many training records as test records)");
  const int64_t label_byte = coarse ? 0 : 1, classes = coarse ? 20 : 100;
  Splits s;
  s.train = make_split("cifar100/train", train, rs, label_byte, classes);
  s.test = make_split("cifar100/test", test, rs, label_byte, classes);
  s.train.class_names = s.test.class_names =
      coarse ? names_from(join_path(dir, "coarse_label_names.txt"), cifar100_coarse_classes())
             : names_from(join_path(dir, "fine_label_names.txt"), cifar100_fine_classes());
  channel_stats(s.train.images, s.train.mean, s.train.std);
  s.test.mean = s.train.mean;
  s.test.std = s.train.std;
  return s;
}

}  // namespace minima::data
