// tests/data/test_folder.cpp: the image-folder datasets (CINIC-10 with PNG files, Restricted
// ImageNet with JPEG files) on small trees written here with stb_image_write; their caches and
// their error paths.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "core/json.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/io.h"
#include "helpers.h"
#include "run_command.h"

#ifdef MINIMA_HAS_STB
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop
#endif

using namespace minima;
using namespace minima::data;
using testdata::contains;
using testdata::error_of;

#ifdef MINIMA_HAS_STB
namespace {

const std::vector<std::string> kCinicClasses = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};

// HWC RGB pixels of a w x h image, deterministic per salt.
std::vector<uint8_t> rgb(int w, int h, uint32_t salt) { return testdata::pattern(size_t(w) * size_t(h) * 3, salt); }

void write_png(const std::string& path, int w, int h, const std::vector<uint8_t>& px) {
  REQUIRE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3) != 0);
}

void write_jpg(const std::string& path, int w, int h, const std::vector<uint8_t>& px) {
  REQUIRE(stbi_write_jpg(path.c_str(), w, h, 3, px.data(), 95) != 0);
}

struct CinicTree {
  testdata::TempDir root;
  std::string dir, cache;
  // split -> list of (class, HWC pixels) in the order the loader reads them (class, then name)
  std::map<std::string, std::vector<std::pair<int, std::vector<uint8_t>>>> written;
  CinicTree() {
    dir = root / "cinic";
    cache = root / "cache";
    uint32_t salt = 1;
    for (const char* split : {"train", "valid", "test"}) {
      for (size_t k = 0; k < kCinicClasses.size(); ++k) {
        std::string cd = dir + "/" + split + "/" + kCinicClasses[k];
        make_dirs(cd);
        int count = std::string(split) == "train" ? 2 : 1;
        for (int j = 0; j < count; ++j) {
          auto px = rgb(32, 32, salt++);
          write_png(cd + "/img" + std::to_string(j) + ".png", 32, 32, px);
          written[split].push_back({int(k), px});
        }
      }
      // A stray non-image file is ignored.
      testdata::write_file(dir + "/" + split + "/airplane/README.txt", {'h', 'i'});
    }
  }
  LoadOptions options() const {
    LoadOptions o;
    o.cache_dir = cache;
    o.threads = 2;
    return o;
  }
};

// The loaded dataset holds exactly the written PNG pixels (CHW) and classes.
void check_matches(const Dataset& d, const std::vector<std::pair<int, std::vector<uint8_t>>>& w) {
  REQUIRE(d.size() == int64_t(w.size()));
  auto x = d.images.to_vector<uint8_t>();
  auto y = d.labels.to_vector<int64_t>();
  for (size_t i = 0; i < w.size(); ++i) {
    CHECK(y[i] == w[i].first);
    bool same = true;
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 32 * 32; ++p)
        same &= x[i * 3072 + size_t(c * 1024 + p)] == w[i].second[size_t(p) * 3 + size_t(c)];
    CHECK(same);
  }
}

}  // namespace

TEST_CASE("cinic10: PNG folders load with exact pixels, class labels, a valid split and cached statistics") {
  CinicTree t;
  Splits s = load_dataset("cinic10", t.dir, t.options());
  CHECK(s.train.images.shape() == Shape{20, 3, 32, 32});
  CHECK(s.train.num_classes == 10);
  CHECK(s.train.class_names == kCinicClasses);
  check_matches(s.train, t.written["train"]);
  check_matches(s.test, t.written["test"]);
  const data::Dataset* valid = s.valid ? &*s.valid : nullptr;
  REQUIRE(valid != nullptr);
  check_matches(*valid, t.written["valid"]);
  // Statistics: of the training images only, shared by every split, and cached.
  std::vector<double> m, sd;
  channel_stats(s.train.images, m, sd);
  CHECK(s.train.mean == m);
  CHECK(s.test.std == sd);
  CHECK(valid->mean == m);
  CHECK(is_file(t.cache + "/cinic10-train-stats.json"));
  CHECK(is_file(t.cache + "/cinic10-train-32.pixels"));

  LoadOptions merged = t.options();
  merged.merge_valid = true;
  Splits sm = load_dataset("cinic10", t.dir, merged);
  CHECK(!sm.valid.has_value());
  CHECK(sm.train.size() == 30);
  auto both = t.written["train"];
  both.insert(both.end(), t.written["valid"].begin(), t.written["valid"].end());
  check_matches(sm.train, both);
}

TEST_CASE("cinic10: the pixel cache is used while the files are unchanged and rebuilt when they change") {
  CinicTree t;
  load_dataset("cinic10", t.dir, t.options());
  // Unchanged files: the second load answers from the cache and does not write it again (an
  // atomic rewrite would give the file a new inode).
  const std::string pixels = t.cache + "/cinic10-train-32.pixels";
  struct stat c0, c1;
  REQUIRE(::stat(pixels.c_str(), &c0) == 0);
  Splits s = load_dataset("cinic10", t.dir, t.options());
  check_matches(s.train, t.written["train"]);
  REQUIRE(::stat(pixels.c_str(), &c1) == 0);
  CHECK(c1.st_ino == c0.st_ino);
  // Replace a training image by a damaged one of the same size and restore its time stamps, as
  // cp -p or rsync -t would: its status-change time still moves (file times tick at a few
  // milliseconds, hence the pause), so the images are decoded again and the damage shows.
  // (The fingerprint used to hold the modification time only, and the cache answered.)
  ::usleep(50 * 1000);
  const std::string victim = t.dir + "/train/cat/img0.png";
  struct stat st;
  REQUIRE(::stat(victim.c_str(), &st) == 0);
  auto bytes = read_bytes(victim);
  for (size_t k = 40; k < bytes.size(); ++k) bytes[k] = 0;
  testdata::write_file(victim, bytes);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, victim.c_str(), times, 0) == 0);
  std::string e = error_of([&] { load_dataset("cinic10", t.dir, t.options()); });
  CHECK(contains(e, victim));
  CHECK(contains(e, "cannot decode"));
}

TEST_CASE("cinic10: damaged caches are rebuilt, never trusted") {
  CinicTree t;
  Splits first = load_dataset("cinic10", t.dir, t.options());
  const std::string stats = t.cache + "/cinic10-train-stats.json", pixels = t.cache + "/cinic10-train-32.pixels";
  const Json good = Json::parse(read_file(stats));
  // Statistics the file would claim: a huge mean, a zero std, a number out of range, a bad \u escape.
  for (const char* damage : {"mean", "std0", "range", "escape"}) {
    const std::string d = damage;
    INFO(d);
    Json j = good;
    if (d == "mean") j["mean"] = std::vector<double>{1e300, 0.5, 0.5};
    if (d == "std0") j["std"] = std::vector<double>{0.0, 0.0, 0.0};
    if (d == "range") j["std"] = Json::array();
    std::string text = j.dump(-1);
    auto put = [&](const std::string& at, const std::string& what) {
      size_t k = text.find(at);
      REQUIRE(k != std::string::npos);
      text.insert(k + at.size(), what);
    };
    if (d == "range") put("\"std\":[", "1e999,1,1");  // not a JSON number minima reads
    if (d == "escape") put("\"fingerprint\":\"", "\\uZZZZ");
    testdata::write_file(stats, std::vector<uint8_t>(text.begin(), text.end()));
    Splits s = load_dataset("cinic10", t.dir, t.options());
    CHECK(s.train.mean == first.train.mean);
    CHECK(s.train.std == first.train.std);
    CHECK(Json::parse(read_file(stats)).dump(-1) == good.dump(-1));  // rewritten
  }
  // The pixel cache's label bytes must be the listing's: a changed one sends the loader back to the images.
  auto bytes = read_bytes(pixels);
  bytes.back() = 200;
  testdata::write_file(pixels, bytes);
  Splits s = load_dataset("cinic10", t.dir, t.options());
  check_matches(s.train, t.written["train"]);
  CHECK(read_bytes(pixels).back() == uint8_t(t.written["train"].back().first));  // rewritten
  // One pixel changed in place, the file's size unchanged: the checksum sends it back too.
  bytes = read_bytes(pixels);
  const size_t header = size_t(std::find(bytes.begin(), bytes.end(), uint8_t('\n')) - bytes.begin()) + 1;
  bytes[header + 1234] ^= 0x40;
  testdata::write_file(pixels, bytes);
  s = load_dataset("cinic10", t.dir, t.options());
  check_matches(s.train, t.written["train"]);
  CHECK(read_bytes(pixels)[header + 1234] == uint8_t(bytes[header + 1234] ^ 0x40));  // rewritten
}

TEST_CASE("cinic10: train --merge-valid records it in the weights, and eval --split train loads the merged split") {
  CinicTree t;
  const std::string bin = MINIMA_BINARY, data = " --dataset cinic10 --data-dir " + t.dir + " --cache-dir " + t.cache;
  testutil::Run r = testutil::run_command(bin + " train --arch mlp --epochs 1 --batch 8 --threads 1 --merge-valid" +
                                          data + " --out " + (t.root / "run") + " 2>&1");
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(contains(r.output, "30 train / 10 test images"));  // 2 + 1 per class
  const std::string weights = t.root / "run/final.safetensors";
  r = testutil::run_command(bin + " eval --device cpu --split train --weights " + weights + " --data-dir " + t.dir +
                            " --cache-dir " + t.cache + " 2>&1");
  CHECK(r.rc == 0);
  CHECK(contains(r.output, "\"samples\": 30"));  // the split it was trained on, as the file says
  r = testutil::run_command(bin + " inspect --file " + weights + " 2>&1");
  CHECK(contains(r.output, "train+valid"));
}

TEST_CASE("cinic10: a read-only data directory puts the caches in the user cache directory") {
  CinicTree t;
  const std::string xdg = t.root / "xdg";
  ::chmod(t.dir.c_str(), 0555);
  if (::geteuid() != 0) {
    const char* old = std::getenv("XDG_CACHE_HOME");
    std::string saved = old ? old : "";
    ::setenv("XDG_CACHE_HOME", xdg.c_str(), 1);
    LoadOptions o;
    o.threads = 2;
    Splits s = load_dataset("cinic10", t.dir, o);
    if (old)
      ::setenv("XDG_CACHE_HOME", saved.c_str(), 1);
    else
      ::unsetenv("XDG_CACHE_HOME");
    CHECK(s.train.size() == 20);
  } else {
    // Root passes every permission check (and CI runs as root), so the loader runs as the user
    // nobody instead: `minima data`, from a copy of the binary inside the test's tree.
    if (std::system("command -v setpriv > /dev/null 2>&1") != 0) {
      MESSAGE("skipped: running as root, and setpriv (util-linux) is missing to run the loader unprivileged");
      ::chmod(t.dir.c_str(), 0755);
      return;
    }
    const std::string bin = t.root / "minima";
    ::chmod(std::string(t.root / "").c_str(), 0755);
    make_dirs(xdg);
    ::chmod(xdg.c_str(), 0777);
    std::filesystem::copy_file(MINIMA_BINARY, bin);
    ::chmod(bin.c_str(), 0755);
    const testutil::Run r =
        testutil::run_command("XDG_CACHE_HOME=" + xdg + " setpriv --reuid=65534 --regid=65534 --clear-groups " + bin +
                              " data --dataset cinic10 --data-dir " + t.dir);
    INFO(r.output);
    CHECK(r.rc == 0);
    CHECK(r.output.find("train") != std::string::npos);
    CHECK(r.output.find("20") != std::string::npos);
  }
  ::chmod(t.dir.c_str(), 0755);
  CHECK(!is_dir(t.dir + "/.minima-cache"));
  auto entries = list_dir(xdg + "/minima");
  REQUIRE(entries.size() == 1);
  CHECK(is_file(xdg + "/minima/" + entries[0] + "/cinic10-train-stats.json"));
}

TEST_CASE("cinic10: layout problems and bad images name the path") {
  CinicTree t;
  CHECK(contains(error_of([&] { load_dataset("cinic10", t.root / "missing", t.options()); }), "CINIC-10.tar.gz"));
  SUBCASE("missing split") {
    testdata::TempDir::remove_tree(t.dir + "/valid");
    std::string e = error_of([&] { load_dataset("cinic10", t.dir, t.options()); });
    CHECK(contains(e, t.dir + "/valid"));
    CHECK(contains(e, "train,valid,test"));
  }
  SUBCASE("class folders differ") {
    make_dirs(t.dir + "/test/zebra");
    CHECK(contains(error_of([&] { load_dataset("cinic10", t.dir, t.options()); }), "class folders"));
  }
  SUBCASE("empty class folder") {
    std::remove((t.dir + "/test/ship/img0.png").c_str());
    std::string e = error_of([&] { load_dataset("cinic10", t.dir, t.options()); });
    CHECK(contains(e, "no PNG files in " + t.dir + "/test/ship"));
  }
  SUBCASE("wrong image size") {
    write_png(t.dir + "/valid/dog/img0.png", 31, 32, rgb(31, 32, 99));
    std::string e = error_of([&] { load_dataset("cinic10", t.dir, t.options()); });
    CHECK(contains(e, t.dir + "/valid/dog/img0.png"));
    CHECK(contains(e, "31x32, expected 32x32"));
  }
  SUBCASE("truncated PNG") {
    const std::string p = t.dir + "/test/frog/img0.png";
    auto b = read_bytes(p);
    b.resize(b.size() / 2);
    testdata::write_file(p, b);
    std::string e = error_of([&] { load_dataset("cinic10", t.dir, t.options()); });
    CHECK(contains(e, p));
    CHECK(contains(e, "cannot decode"));
  }
}

namespace {

// An ImageNet-like tree: synset n%08d has class index k, listed in LOC_synset_mapping.txt; only
// the folders of the restricted classes and a few others exist (the loader needs no more).
struct ImagenetTree {
  testdata::TempDir root;
  std::string dir;
  ImagenetTree() {
    dir = root / "imagenet";
    make_dirs(dir);
    std::string map;
    for (int k = 0; k < 1000; ++k) map += name(k) + " some class, its synonyms\n";
    testdata::write_file(dir + "/LOC_synset_mapping.txt", std::vector<uint8_t>(map.begin(), map.end()));
    const int ranges[9][2] = {{151, 268}, {281, 285}, {30, 32},   {33, 37},  {80, 100},
                              {365, 382}, {389, 397}, {118, 121}, {300, 319}};
    for (const char* split : {"train", "val"}) {
      for (const auto& r : ranges)
        for (int k = r[0]; k <= r[1]; ++k) make_dirs(synset(split, k));
      for (int k : {150, 269, 500}) make_dirs(synset(split, k));
    }
  }
  static std::string name(int k) {
    char b[16];
    std::snprintf(b, sizeof b, "n%08d", k);
    return b;
  }
  std::string synset(const char* split, int k) const { return dir + "/" + split + "/" + name(k); }
};

}  // namespace

TEST_CASE("restricted-imagenet: superclasses by class index ranges, JPEG decoding and resizing") {
  ImagenetTree t;
  // Constant-color images decode (almost) exactly from JPEG and survive any resize.
  struct Img {
    int cls, w, h;
    uint8_t r, g, b;
  };
  const Img imgs[] = {{151, 80, 60, 200, 30, 40}, {268, 64, 64, 10, 220, 30}, {281, 50, 90, 90, 90, 200},
                      {30, 70, 70, 250, 250, 5},  {319, 100, 40, 5, 5, 5},    {150, 64, 64, 1, 2, 3},
                      {269, 64, 64, 1, 2, 3},     {500, 64, 64, 1, 2, 3}};
  const int want_label[] = {0, 0, 1, 2, 8, -1, -1, -1};  // dog, dog, cat, frog, insect; 150/269/500 excluded
  for (const Img& m : imgs) {
    std::vector<uint8_t> px(size_t(m.w * m.h * 3));
    for (size_t p = 0; p < px.size(); p += 3) {
      px[p] = m.r;
      px[p + 1] = m.g;
      px[p + 2] = m.b;
    }
    write_jpg(t.synset("train", m.cls) + "/a.JPEG", m.w, m.h, px);
    write_jpg(t.synset("val", m.cls) + "/v.jpeg", m.w, m.h, px);
  }
  LoadOptions o;
  o.image_size = 16;
  o.cache_dir = t.root / "cache";
  o.threads = 2;
  Splits s = load_dataset("restricted-imagenet", t.dir, o);
  CHECK(s.train.num_classes == 9);
  CHECK(s.train.class_names[5] == "primate");
  CHECK(s.train.images.shape() == Shape{5, 3, 16, 16});
  CHECK(s.test.size() == 5);
  // Files are read in superclass order (dog, cat, frog, turtle, bird, primate, fish, crab, insect).
  std::vector<int> by_label = {0, 1, 2, 3, 4};  // indices into imgs
  std::stable_sort(by_label.begin(), by_label.end(), [&](int a, int b) { return want_label[a] < want_label[b]; });
  auto y = s.train.labels.to_vector<int64_t>();
  auto x = s.train.images.to_vector<uint8_t>();
  for (int k = 0; k < 5; ++k) {
    const Img& m = imgs[by_label[size_t(k)]];
    CHECK(y[size_t(k)] == want_label[by_label[size_t(k)]]);
    int worst = 0;
    for (int c = 0; c < 3; ++c) {
      const int v = c == 0 ? m.r : c == 1 ? m.g : m.b;
      for (int p = 0; p < 256; ++p)
        worst = std::max(worst, std::abs(int(x[size_t(k) * 768 + size_t(c * 256 + p)]) - v));
    }
    CHECK(worst <= 3);
  }
  CHECK(s.test.labels.to_vector<int64_t>() == y);
  CHECK(is_file(o.cache_dir + "/restricted-imagenet-16-stats.json"));
}

TEST_CASE("restricted-imagenet: a resized image keeps its centered square") {
  ImagenetTree t;
  // 60x40 image: left third red, middle third green, right third blue; the center square (x 10..49)
  // is a quarter red, half green, a quarter blue, resized to 8x8.
  std::vector<uint8_t> px(size_t(60 * 40 * 3), 0);
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 60; ++x) px[size_t(y * 60 + x) * 3 + (x < 20 ? 0 : x < 40 ? 1 : 2)] = 255;
  write_png(t.synset("train", 200) + "/a.png", 60, 40, px);  // PNG is accepted too
  write_png(t.synset("val", 200) + "/a.png", 60, 40, px);
  LoadOptions o;
  o.image_size = 8;
  o.cache_dir = t.root / "cache";
  Splits s = load_dataset("restricted-imagenet", t.dir, o);
  auto x = s.train.images.to_vector<uint8_t>();
  // Row 4: columns 0-1 red, 2-5 green, 6-7 blue (away from the edges between colors).
  auto at = [&](int c, int col) { return int(x[size_t(c) * 64 + size_t(4 * 8 + col)]); };
  CHECK(at(0, 0) > 200);
  CHECK(at(1, 0) < 60);
  CHECK(at(1, 3) > 200);
  CHECK(at(1, 4) > 200);
  CHECK(at(0, 3) < 60);
  CHECK(at(2, 7) > 200);
  CHECK(at(1, 7) < 60);
}

TEST_CASE("restricted-imagenet: the class-index rule is explained when the tree is incomplete") {
  testdata::TempDir t;
  const std::string dir = t / "imagenet";
  for (const char* split : {"train", "val"})
    for (int k : {0, 1, 2}) make_dirs(dir + "/" + split + "/n0000000" + std::to_string(k));
  // Without a mapping file every one of the 1000 synset folders is needed.
  std::string e = error_of([&] { load_dataset("restricted-imagenet", dir); });
  CHECK(contains(e, "has 3 synset folders, expected 1000"));
  CHECK(contains(e, "sorted"));
  // A mapping file must list 1000 synsets.
  testdata::write_file(dir + "/synsets.txt", {'n', '1', '\n', 'n', '2', '\n'});
  e = error_of([&] { load_dataset("restricted-imagenet", dir); });
  CHECK(contains(e, "synsets.txt lists 2 synsets, expected 1000"));
  CHECK(contains(error_of([&] { load_dataset("restricted-imagenet", t / "none"); }), "ILSVRC2012"));
  // Its names must be distinct folder names: a repeat loaded one folder under two labels, and a
  // path read images from outside the data directory.
  auto mapping = [&](int k, const std::string& replacement) {
    std::string map;
    for (int i = 0; i < 1000; ++i) map += (i == k ? replacement : "n" + std::to_string(100000 + i)) + "\n";
    testdata::write_file(dir + "/synsets.txt", std::vector<uint8_t>(map.begin(), map.end()));
  };
  mapping(281, "n100151");
  CHECK(contains(error_of([&] { load_dataset("restricted-imagenet", dir); }),
                 "synset n100151 is listed twice (synsets 152 and 282)"));
  mapping(281, "../../elsewhere");
  CHECK(contains(error_of([&] { load_dataset("restricted-imagenet", dir); }),
                 "synset 282 is '../../elsewhere', not a folder name"));
  mapping(7, "..");
  CHECK(contains(error_of([&] { load_dataset("restricted-imagenet", dir); }), "synset 8 is '..'"));
}

TEST_CASE("restricted-imagenet: a missing folder of a restricted class is named") {
  ImagenetTree t;
  testdata::TempDir::remove_tree(t.synset("val", 383 - 1));
  std::string e = error_of([&] { load_dataset("restricted-imagenet", t.dir); });
  CHECK(contains(e, t.synset("val", 382)));
  CHECK(contains(e, "class index 382 (primate)"));
}

TEST_CASE("an image that cannot be decoded is named, with the format its bytes or its name say") {
  testdata::TempDir t;
  const std::string jpg = t / "a.JPEG", png = t / "b.png", cut = t / "cut.JPEG";
  write_jpg(jpg, 24, 24, rgb(24, 24, 5));
  write_png(png, 24, 24, rgb(24, 24, 6));
  std::vector<uint8_t> out(3 * 16 * 16);
  // Every truncation of a JPEG is refused (as PIL, and so torchvision, refuses it), the EOI marker
  // alone included. stb tries the PNG decoder first, and when the JPEG decoder gave no reason of
  // its own, the PNG test's "bad png sig" used to be the whole message.
  const std::vector<uint8_t> bytes = read_bytes(jpg);
  for (size_t n = 1; n < bytes.size(); ++n) {
    testdata::write_file(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + std::ptrdiff_t(n)));
    const std::string e = error_of([&] { decode_image_file(cut, 16, false, out.data()); });
    INFO(n, " bytes: ", e);
    CHECK(contains(e, cut + ": cannot decode it as a JPEG"));
    CHECK(contains(e, "truncated or corrupt"));
    CHECK(!contains(e, "png"));
  }
  auto b = read_bytes(png);
  b.resize(b.size() / 2);
  testdata::write_file(png, b);
  std::string e = error_of([&] { decode_image_file(png, 16, false, out.data()); });
  CHECK(contains(e, png + ": cannot decode it as a PNG"));
  testdata::write_file(png, std::vector<uint8_t>{'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  e = error_of([&] { decode_image_file(png, 16, false, out.data()); });
  CHECK(contains(e,
                 png + ": cannot decode it as a PNG (12 bytes): its name says PNG, but it does not start as one does"));
}

// A DHT segment with one table (class 0, index 0) that defines `codes` codes (at most 16 * 255),
// the longest lengths first (up to 510 codes, lengths the table builder accepts), and as many
// symbol bytes, so that the segment's length is right.
std::vector<uint8_t> dht_segment(int codes) {
  std::vector<uint8_t> seg = {0xff, 0xc4, 0, 0, 0x00}, counts(16);
  for (int k = 15, left = codes; k >= 0; --k, left -= 255) counts[size_t(k)] = uint8_t(std::clamp(left, 0, 255));
  seg.insert(seg.end(), counts.begin(), counts.end());
  for (int s = 0; s < codes; ++s) seg.push_back(uint8_t(s));
  const size_t len = seg.size() - 2;
  seg[2] = uint8_t(len >> 8);
  seg[3] = uint8_t(len & 0xff);
  return seg;
}

TEST_CASE("a JPEG whose Huffman table defines more than 256 codes is refused before the decoder reads it") {
  // stb_image 2.27 writes past its tables on such a file (UBSan reports it); the loader names the
  // table instead, whether it comes before the image data or after it.
  testdata::TempDir t;
  const std::string jpg = t / "a.JPEG", bad = t / "bad.JPEG";
  write_jpg(jpg, 24, 24, rgb(24, 24, 7));
  const std::vector<uint8_t> bytes = read_bytes(jpg);
  std::vector<uint8_t> out(3 * 16 * 16);
  decode_image_file(jpg, 16, false, out.data());  // the file itself is sound
  const uint8_t sof_marker[2] = {0xff, 0xc0};
  const size_t sof = size_t(std::search(bytes.begin(), bytes.end(), sof_marker, sof_marker + 2) - bytes.begin());
  REQUIRE(sof < bytes.size());
  REQUIRE(bytes[bytes.size() - 2] == 0xff);
  REQUIRE(bytes.back() == 0xd9);
  for (size_t at : {sof, bytes.size() - 2}) {        // before the frame header, and between the scan and EOI
    for (int codes : {256, 257, 300, 4080, -300}) {  // -300: 300, behind bytes that are no marker
      CAPTURE(at);
      CAPTURE(codes);
      std::vector<uint8_t> b = bytes;
      std::vector<uint8_t> seg = dht_segment(std::abs(codes));
      if (codes < 0) seg.insert(seg.begin(), {0x00, 0x17, 0x42});  // stb skips them before the frame
      b.insert(b.begin() + std::ptrdiff_t(at), seg.begin(), seg.end());
      testdata::write_file(bad, b);
      const std::string e = error_of([&] { decode_image_file(bad, 16, false, out.data()); });
      if (std::abs(codes) <= 256) {
        // A full table is legal: after the scan it is never used, and before the frame the file's
        // own tables replace it, so the image decodes as before.
        CHECK(e.empty());
      } else {
        CHECK(contains(e, bad + ": cannot decode it as a JPEG (" + std::to_string(b.size()) + " bytes)"));
        CHECK(contains(e, "its Huffman table DC0 defines " + std::to_string(std::abs(codes)) +
                              " codes, more than the 256 symbols there are: the file is corrupt"));
      }
    }
  }
  // stb reads a table's counts and symbols before it compares them with the segment's length, so
  // a segment that claims only the counts still overflows; and stb takes 0xFF fill bytes before
  // SOI, so a file that starts 0xFF 0xFF 0xD8 is a JPEG to it (it decodes) and is checked too.
  std::vector<uint8_t> filled = bytes;
  filled.insert(filled.begin(), 0xff);
  testdata::write_file(bad, filled);
  CHECK(error_of([&] { decode_image_file(bad, 16, false, out.data()); }).empty());
  for (bool fill : {false, true}) {
    CAPTURE(fill);
    std::vector<uint8_t> b = fill ? filled : bytes;
    std::vector<uint8_t> seg = dht_segment(300);
    seg[2] = 0;
    seg[3] = 19;  // the length, the class byte and the counts
    b.insert(b.begin() + std::ptrdiff_t(sof + (fill ? 1 : 0)), seg.begin(), seg.end());
    testdata::write_file(bad, b);
    const std::string e = error_of([&] { decode_image_file(bad, 16, false, out.data()); });
    CHECK(contains(e, "its Huffman table DC0 defines 300 codes"));
  }
}

TEST_CASE("a PNG with a damaged chunk is refused by its CRC, not decoded to other pixels") {
  // stb checks no CRC: every bit flipped in the compressed pixels used to decode without a word.
  testdata::TempDir t;
  const std::string png = t / "a.png", bad = t / "bad.png";
  write_png(png, 24, 24, rgb(24, 24, 8));
  const std::vector<uint8_t> bytes = read_bytes(png);
  std::vector<uint8_t> out(3 * 16 * 16);
  decode_image_file(png, 16, false, out.data());
  // The chunks: IHDR at byte 8, then (stb_image_write) one IDAT, then IEND.
  auto be32 = [&](size_t k) {
    return size_t(bytes[k]) << 24 | size_t(bytes[k + 1]) << 16 | size_t(bytes[k + 2]) << 8 | size_t(bytes[k + 3]);
  };
  const size_t idat = 8 + 12 + be32(8);
  REQUIRE(std::string(bytes.begin() + std::ptrdiff_t(idat + 4), bytes.begin() + std::ptrdiff_t(idat + 8)) == "IDAT");
  const size_t idat_len = be32(idat);
  int refused = 0;
  // Every bit of the IDAT's compressed data, and a bit of IHDR's height and of each CRC.
  std::vector<std::pair<size_t, std::string>> flips;
  for (size_t k = idat + 8; k < idat + 8 + idat_len; ++k)
    flips.push_back({k, "IDAT chunk at byte " + std::to_string(idat)});
  flips.push_back({8 + 8 + 7, "IHDR chunk at byte 8"});
  flips.push_back({8 + 8 + 13 + 2, "IHDR chunk at byte 8"});
  flips.push_back({idat + 8 + idat_len + 1, "IDAT chunk at byte " + std::to_string(idat)});
  for (const auto& [at, named] : flips) {
    for (int bit : {0, 5}) {
      std::vector<uint8_t> b = bytes;
      b[at] ^= uint8_t(1u << bit);
      testdata::write_file(bad, b);
      const std::string e = error_of([&] { decode_image_file(bad, 16, false, out.data()); });
      INFO("byte ", at, " bit ", bit, ": ", e);
      refused += contains(e, bad + ": cannot decode it as a PNG (" + std::to_string(b.size()) + " bytes): its " +
                                 named + " does not match its CRC: the file is corrupt");
    }
  }
  CHECK(refused == int(2 * flips.size()));
}

#else
TEST_CASE("folder datasets need stb" * doctest::skip(true)) {}
#endif

TEST_CASE("file_extension: of a name or a path, lower-cased, never from a directory's name") {
  CHECK(file_extension("n01440764_10026.JPEG") == ".jpeg");
  CHECK(file_extension("train/cat/b.Png") == ".png");
  CHECK(file_extension("/data/cinic.v2/train/cat/b") == "");  // the dot is a directory's
  CHECK(file_extension(".hidden") == "");
  CHECK(file_extension("dir/.hidden") == "");
  CHECK(file_extension("archive.tar.gz") == ".gz");
  CHECK(file_extension("noext") == "");
}
