// tests/core/test_atomic_file.cpp: AtomicFile and write_file_atomic never leave a torn target or a
// stray temporary file: the target changes only at commit, a writer that gives up (an exception)
// leaves the old content, failures name the file, and two writers never share a temporary file.
// Also the checksum that such files carry (core/checksum.h).
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/checksum.h"
#include "core/error.h"
#include "core/json.h"
#include "temp_dir.h"

using namespace minima;

namespace {
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.emplace_back(e->d_name);
    ::closedir(d);
  }
  return out;
}
}  // namespace

TEST_CASE("atomic files: the target changes only at commit, and nothing else is left behind") {
  testutil::TempDir dir("atomic");
  const std::string target = dir / "run.json";
  write_file_atomic(target, "old");
  CHECK(read_file(target) == "old");
  CHECK(entries(dir.path()) == std::vector<std::string>{"run.json"});

  {
    AtomicFile f(target);
    f.write("new ", 4);
    CHECK(read_file(target) == "old");  // written, not committed
    f.write("content", 7);
    f.commit();
    CHECK_THROWS_WITH_AS(f.write("x", 1), doctest::Contains("after commit"), Error);
  }
  CHECK(read_file(target) == "new content");
  CHECK(entries(dir.path()) == std::vector<std::string>{"run.json"});

  // A writer that gives up half-way (an exception while it writes) leaves the old file whole.
  try {
    AtomicFile f(target);
    f.write("half", 4);
    throw std::runtime_error("stopped");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "stopped");
  }
  CHECK(read_file(target) == "new content");
  CHECK(entries(dir.path()) == std::vector<std::string>{"run.json"});

  // Two writers of one target at once have their own temporary files; the last commit wins whole.
  {
    AtomicFile a(target), b(target);
    CHECK(a.temp_path() != b.temp_path());
    a.write("from a", 6);
    b.write("from b", 6);
    a.commit();
    CHECK(read_file(target) == "from a");
    b.commit();
  }
  CHECK(read_file(target) == "from b");
  CHECK(entries(dir.path()) == std::vector<std::string>{"run.json"});
}

TEST_CASE("atomic files: a durable file (synced before and after its rename) commits the same way") {
  testutil::TempDir dir("atomic");
  const std::string target = dir / "checkpoint.safetensors";
  {
    AtomicFile f(target, AtomicFile::Sync::durable);
    f.write("weights", 7);
    CHECK(entries(dir.path()) == std::vector<std::string>{f.temp_path().substr(dir.path().size() + 1)});
    f.commit();
  }
  CHECK(read_file(target) == "weights");
  {
    AtomicFile f(target, AtomicFile::Sync::durable);
    f.write("never committed", 15);
  }
  CHECK(read_file(target) == "weights");
  CHECK(entries(dir.path()) == std::vector<std::string>{"checkpoint.safetensors"});
  CHECK_THROWS_WITH_AS(AtomicFile(dir / "missing/checkpoint.safetensors", AtomicFile::Sync::durable),
                       doctest::Contains("missing/checkpoint.safetensors.tmp."), Error);
}

TEST_CASE("atomic files: a target that cannot be written is an error naming it, and nothing is left") {
  testutil::TempDir dir("atomic");
  CHECK_THROWS_WITH_AS(write_file_atomic(dir / "missing/run.json", "x"), doctest::Contains("missing/run.json.tmp."),
                       Error);
  CHECK(entries(dir.path()).empty());
  // A folder where the file should go: the rename fails, and the temporary file is removed.
  const std::string folder = dir / "taken";
  REQUIRE(::mkdir(folder.c_str(), 0755) == 0);
  ::close(::open((folder + "/inside").c_str(), O_WRONLY | O_CREAT, 0644));  // not empty: rename cannot replace it
  CHECK_THROWS_WITH_AS(write_file_atomic(folder, "x"), doctest::Contains("cannot rename"), Error);
  CHECK(entries(dir.path()) == std::vector<std::string>{"taken"});
}

TEST_CASE("checksum64: every bit of the input and its length count, and hex64 round-trips") {
  // A random buffer long enough for whole 32-byte blocks and a tail: flipping any one bit changes
  // the checksum (the per-word steps are bijections, so this must hold for every position).
  std::vector<uint8_t> buf(77);
  uint64_t s = 0x2545f4914f6cdd1dull;
  for (auto& b : buf) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    b = uint8_t(s);
  }
  const uint64_t base = checksum64(buf.data(), buf.size());
  int unchanged = 0;
  for (size_t i = 0; i < buf.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      buf[i] ^= uint8_t(1 << bit);
      unchanged += checksum64(buf.data(), buf.size()) == base;
      buf[i] ^= uint8_t(1 << bit);
    }
  CHECK(unchanged == 0);
  CHECK(checksum64(buf.data(), buf.size()) == base);
  // Two whole words swapped between blocks change it too.
  std::vector<uint8_t> swapped = buf;
  std::swap_ranges(swapped.begin(), swapped.begin() + 8, swapped.begin() + 32);
  CHECK(checksum64(swapped.data(), swapped.size()) != base);
  // Runs of zeros of different lengths all differ.
  std::vector<uint8_t> zeros(80, 0);
  std::vector<uint64_t> seen;
  for (size_t n = 0; n <= zeros.size(); ++n) seen.push_back(checksum64(zeros.data(), n));
  std::sort(seen.begin(), seen.end());
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
  // Files store these values, so the function must never change: one pinned value guards that.
  const std::string text = "minima checksum64, version 1";
  CHECK(hex64(checksum64(text.data(), text.size())) == "de3f2d361031d1a5");

  uint64_t v = 0;
  CHECK(hex64(0x0123456789abcdefull) == "0123456789abcdef");
  REQUIRE(parse_hex64(hex64(base), v));
  CHECK(v == base);
  for (const char* bad :
       {"", "0123456789abcde", "0123456789abcdef0", "0123456789ABCDEF", "0123456789abcdeg", " 123456789abcdef"})
    CHECK_FALSE(parse_hex64(bad, v));
}
