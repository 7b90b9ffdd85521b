// data/idx.cpp: MNIST and Fashion-MNIST from IDX files (gzipped or raw). An IDX file is a 4-byte
// magic (two zero bytes, a type code, the number of dimensions), one big-endian uint32 per
// dimension, then the values in row-major order; both datasets use type 0x08 (unsigned byte).
// Offsets in error messages are offsets into the decompressed content.
#include <cstring>

#include "core/error.h"
#include "data/dataset.h"
#include "data/io.h"

namespace minima::data {

namespace {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;  // the whole (decompressed) file
  size_t data_offset = 0;      // where the values start
};

// Checks the magic and the dims at the start of b; returns the number of values they describe.
size_t parse_idx_header(const std::vector<uint8_t>& b, const std::string& path, int ndims, std::vector<int64_t>& dims) {
  MINIMA_CHECK(b.size() >= 4, path, ": truncated IDX header: ", b.size(), " bytes, expected at least 4");
  uint32_t magic = read_be32(b.data());
  uint32_t expected_magic = 0x0800u | uint32_t(ndims);
  if (magic != expected_magic) {
    char found[16], want[16];
    std::snprintf(found, sizeof found, "0x%08x", magic);
    std::snprintf(want, sizeof want, "0x%08x", expected_magic);
    throw Error(str(path, ": wrong IDX magic number at byte offset 0: expected ", want, " (unsigned bytes, ", ndims,
                    " dimensions), found ", found));
  }
  size_t header = 4 + 4 * size_t(ndims);
  MINIMA_CHECK(b.size() >= header, path, ": truncated IDX header: ", b.size(), " bytes, expected ", header);
  size_t count = 1;
  dims.clear();
  for (int d = 0; d < ndims; ++d) {
    uint32_t n = read_be32(b.data() + 4 + 4 * d);
    MINIMA_CHECK(n > 0 && n < (1u << 30), path, ": implausible size ", n, " of dimension ", d, " at byte offset ",
                 4 + 4 * d);
    dims.push_back(int64_t(n));
    count *= n;
    MINIMA_CHECK(count <= (size_t(1) << 40), path, ": implausible IDX dimensions ", dims, " (header at byte offset 4)");
  }
  return count;
}

// Parses an unsigned-byte IDX file with `ndims` dimensions, checking the size exactly. A gzipped
// file is inflated only as far as its header accounts for: a few megabytes of gzip could
// otherwise inflate to gigabytes before the size check.
IdxArray read_idx(const std::string& path, int ndims) {
  IdxArray a;
  const size_t header = 4 + 4 * size_t(ndims);
  std::vector<uint8_t> raw = read_bytes(path);
  if (is_gzip(raw)) {
    const size_t count = parse_idx_header(gunzip(raw, path, header, /*prefix=*/true), path, ndims, a.dims);
    a.bytes = gunzip(raw, path, header + count);
  } else {
    a.bytes = std::move(raw);
  }
  const auto& b = a.bytes;
  const size_t count = parse_idx_header(b, path, ndims, a.dims);
  a.data_offset = header;
  size_t have = b.size() - header;
  MINIMA_CHECK(have >= count, path, ": truncated: the data ends at byte offset ", b.size(), " but the header (dims ",
               a.dims, ") needs ", count, " bytes from offset ", header, ", i.e. up to offset ", header + count);
  MINIMA_CHECK(have == count, path, ": ", have - count, " unexpected trailing bytes from byte offset ", header + count,
               " (header dims ", a.dims, " account for ", count, " bytes after offset ", header, ")");
  return a;
}

// The first existing variant of an IDX file name: gzipped or raw, '-' or '.' before "idx".
std::string find_idx_file(const std::string& dir, const std::string& stem, const std::string& suffix) {
  for (const char* sep : {"-", "."})
    for (const char* ext : {".gz", ""}) {
      std::string p = join_path(dir, stem + sep + suffix + ext);
      if (is_file(p)) return p;
    }
  return "";
}

std::string idx_layout(const std::string& name) {
  std::string s =
      "expected the four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
      "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each gzipped (.gz) or raw)";
  if (name == "fashion-mnist")
    s += "; Fashion-MNIST comes with the Debian package dataset-fashion-mnist (installed in "
         "/usr/share/datasets/fashion-mnist) or from https://github.com/zalandoresearch/fashion-mnist";
  else
    s += "; MNIST comes from https://yann.lecun.com/exdb/mnist/ (or a mirror such as "
         "https://ossci-datasets.s3.amazonaws.com/mnist/)";
  return s;
}

Dataset load_idx_split(const std::string& name, const std::string& dir, const std::string& prefix) {
  std::string ip = find_idx_file(dir, prefix + "-images", "idx3-ubyte");
  std::string lp = find_idx_file(dir, prefix + "-labels", "idx1-ubyte");
  MINIMA_CHECK(!ip.empty(), name, ": no ", prefix, "-images-idx3-ubyte[.gz] in ", dir, "; ", idx_layout(name));
  MINIMA_CHECK(!lp.empty(), name, ": no ", prefix, "-labels-idx1-ubyte[.gz] in ", dir, "; ", idx_layout(name));
  IdxArray im = read_idx(ip, 3);
  IdxArray lb = read_idx(lp, 1);
  int64_t n = im.dims[0];
  MINIMA_CHECK(lb.dims[0] == n, name, ": mismatched counts: ", ip, " holds ", n, " images but ", lp, " holds ",
               lb.dims[0], " labels");
  Dataset ds;
  ds.name = name + "/" + (prefix == "train" ? "train" : "test");
  ds.num_classes = 10;
  ds.images = empty({n, 1, im.dims[1], im.dims[2]}, DType::u8);
  std::memcpy(ds.images.data_ptr(), im.bytes.data() + im.data_offset, size_t(ds.images.numel()));
  ds.labels = empty({n}, DType::i64);
  int64_t* y = ds.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    uint8_t v = lb.bytes[lb.data_offset + size_t(i)];
    MINIMA_CHECK(v < 10, lp, ": label ", int(v), " at byte offset ", lb.data_offset + size_t(i), " is outside 0..9");
    y[i] = v;
  }
  return ds;
}

}  // namespace

Splits load_idx_dataset(const std::string& name, const std::string& dir) {
  require_data_dir(name, dir, idx_layout(name));
  Splits s;
  s.train = load_idx_split(name, dir, "train");
  s.test = load_idx_split(name, dir, "t10k");
  MINIMA_CHECK(s.train.height() == s.test.height() && s.train.width() == s.test.width(), name, ": train images are ",
               s.train.height(), "x", s.train.width(), " but test images are ", s.test.height(), "x", s.test.width());
  std::vector<std::string> names;
  if (name == "fashion-mnist") {
    names = fashion_mnist_classes();
  } else {
    for (int i = 0; i < 10; ++i) names.push_back(std::to_string(i));
  }
  s.train.class_names = s.test.class_names = names;
  channel_stats(s.train.images, s.train.mean, s.train.std);
  s.test.mean = s.train.mean;
  s.test.std = s.train.std;
  return s;
}

}  // namespace minima::data
