// data/folder.cpp: image-folder datasets: CINIC-10 (train/, valid/, test/, one folder per class,
// 32x32 PNG files) and Restricted ImageNet (train/, val/, one folder per WordNet synset, JPEG
// files, grouped into the 9 superclasses of Tsipras et al. by ImageNet class index ranges).
// Decoding is done by a pool of host threads. Two caches avoid repeating slow work; both carry a
// fingerprint of the file list (relative paths, sizes, modification and status-change times to the
// nanosecond, image size) and are ignored and rebuilt when it differs. The status-change time
// (ctime) cannot be set back by a program, so a file replaced by another of the same size whose
// modification time was restored (cp -p, rsync -t) still changes the fingerprint:
//  * the normalization constants, a small JSON file;
//  * the decoded pixels of each split (a header line, then images and labels), written atomically.
// They live in <data dir>/.minima-cache, or when that is read-only in the user cache directory
// ($XDG_CACHE_HOME/minima or ~/.cache/minima), or in LoadOptions::cache_dir.
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>

#include "core/atomic_file.h"
#include "core/checksum.h"
#include "core/error.h"
#include "core/json.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/io.h"

namespace minima::data {

namespace {

struct FileList {
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  uint64_t fingerprint = 1469598103934665603ull;  // FNV-1a over (relative path, size, mtime, ctime)
};

void fnv(uint64_t& h, const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) {
    h ^= b[i];
    h *= 1099511628211ull;
  }
}

bool is_image_name(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  std::string e = file_extension(name);
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

// Adds the image files of `dir` (relative name `rel` in the fingerprint) with the given label.
void add_folder(FileList& fl, const std::string& dir, const std::string& rel, int64_t label) {
  for (const std::string& n : list_dir(dir)) {
    if (!is_image_name(n)) continue;
    std::string p = join_path(dir, n);
    struct stat st;
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    fl.paths.push_back(p);
    fl.labels.push_back(label);
    std::string r = rel + "/" + n;
    fnv(fl.fingerprint, r.data(), r.size() + 1);
    int64_t meta[5] = {int64_t(st.st_size), int64_t(st.st_mtim.tv_sec), int64_t(st.st_mtim.tv_nsec),
                       int64_t(st.st_ctim.tv_sec), int64_t(st.st_ctim.tv_nsec)};
    fnv(fl.fingerprint, meta, sizeof meta);
  }
}

std::string absolute(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char buf[4096];
  if (::getcwd(buf, sizeof buf)) return join_path(buf, p);
  return p;
}

std::string cache_dir_for(const std::string& data_dir, const LoadOptions& opt) {
  if (!opt.cache_dir.empty()) return opt.cache_dir;
  std::string local = join_path(data_dir, ".minima-cache");
  if (is_dir(local) ? dir_writable(local) : dir_writable(data_dir)) return local;
  std::string key = absolute(data_dir);
  for (char& c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
  return join_path(user_cache_dir(), key);
}

void warn(const std::string& msg) { std::fprintf(stderr, "warning: %s\n", msg.c_str()); }

// A checksum of a cache's pixels and labels (about 0.4 s for CINIC-10's 830 MB of training pixels,
// against minutes to decode them).
uint64_t checksum(const Tensor& images, const std::vector<uint8_t>& labels) {
  const uint64_t a = checksum64(images.data_ptr(), size_t(images.numel()));
  return a ^ (checksum64(labels.data(), labels.size()) * 0x9e3779b97f4a7c15ull);
}

// ---- the decoded-pixel cache: "MINIMA-PIXELS 1 <json>\n", images (u8), labels (u8) ----
// The cache must hold the listing's labels too (the fingerprint covers paths and file sizes, not
// which class folder a file was listed under by this code's version), and its checksum: bytes
// damaged in place, the file's size unchanged, send the loader back to the images.
bool read_pixel_cache(const std::string& path, uint64_t fingerprint, const std::vector<int64_t>& labels, int64_t size,
                      Dataset& ds) {
  const auto n = int64_t(labels.size());
  if (!is_file(path)) return false;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  std::unique_ptr<FILE, int (*)(FILE*)> keep(f, std::fclose);
  char line[512];
  if (!std::fgets(line, sizeof line, f) || std::strncmp(line, "MINIMA-PIXELS 1 ", 16) != 0) return false;
  std::string sum;
  try {
    Json h = Json::parse(std::string(line + 16));
    if (h.at("fingerprint").as_string() != hex64(fingerprint) || h.at("count").as_int() != n ||
        h.at("size").as_int() != size)
      return false;
    sum = h.at("checksum").as_string();  // caches written before it had one are rebuilt
  } catch (const Error&) {
    return false;
  }
  const size_t header = std::strlen(line), img_bytes = size_t(n * 3 * size * size);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || size_t(st.st_size) != header + img_bytes + size_t(n)) {
    warn(str(path, ": cache file has ", st.st_size, " bytes, expected ", header + img_bytes + size_t(n),
             "; decoding the images again"));
    return false;
  }
  ds.images = empty({n, 3, size, size}, DType::u8);
  std::vector<uint8_t> y(static_cast<size_t>(n));
  if (std::fread(ds.images.data_ptr(), 1, img_bytes, f) != img_bytes ||
      std::fread(y.data(), 1, y.size(), f) != y.size()) {
    warn(str(path, ": short read from the cache file; decoding the images again"));
    return false;
  }
  if (hex64(checksum(ds.images, y)) != sum) {
    warn(str(path, ": cache file does not match its checksum (damaged?); decoding the images again"));
    return false;
  }
  for (size_t i = 0; i < y.size(); ++i)
    if (int64_t(y[i]) != labels[i]) {
      warn(str(path, ": cache file has label ", int(y[i]), " for sample ", i, " where the folders say ", labels[i],
               "; decoding the images again"));
      return false;
    }
  ds.labels = empty({n}, DType::i64);
  std::memcpy(ds.labels.data_ptr(), labels.data(), size_t(n) * 8);
  return true;
}

void write_pixel_cache(const std::string& path, uint64_t fingerprint, const Dataset& ds, int64_t size) {
  Json h = Json::object();
  h["fingerprint"] = hex64(fingerprint);
  h["count"] = ds.size();
  h["size"] = size;
  h["name"] = ds.name;
  std::vector<uint8_t> y(static_cast<size_t>(ds.size()));
  for (int64_t i = 0; i < ds.size(); ++i) y[size_t(i)] = uint8_t(ds.labels.data<int64_t>()[i]);
  h["checksum"] = hex64(checksum(ds.images, y));
  std::string header = "MINIMA-PIXELS 1 " + h.dump(-1) + "\n";
  try {
    AtomicFile f(path);
    f.write(header.data(), header.size());
    f.write(ds.images.data_ptr(), size_t(ds.images.numel()));
    f.write(y.data(), y.size());
    f.commit();
  } catch (const Error& e) {
    warn(str("could not write the pixel cache (", e.what(), "); the images will be decoded again next time"));
  }
}

// Decodes (or reads from the cache) one split.
Dataset load_split(const std::string& dsname, const std::string& split, const FileList& fl, int64_t size, bool exact,
                   const std::string& cache, const LoadOptions& opt) {
  Dataset ds;
  ds.name = dsname + "/" + split;
  MINIMA_CHECK(!fl.paths.empty(), ds.name, ": no image files found");
  const std::string cpath = join_path(cache, str(dsname, "-", split, "-", size, ".pixels"));
  const int64_t n = int64_t(fl.paths.size());
  if (read_pixel_cache(cpath, fl.fingerprint, fl.labels, size, ds)) {
    if (opt.verbose)
      std::fprintf(stderr, "%s: %lld images from the cache %s\n", ds.name.c_str(), (long long)n, cpath.c_str());
    return ds;
  }
  if (opt.verbose) std::fprintf(stderr, "%s: decoding %lld images\n", ds.name.c_str(), (long long)n);
  ds.images = decode_images(fl.paths, size, exact, opt.threads, opt.verbose, ds.name);
  ds.labels = empty({n}, DType::i64);
  std::memcpy(ds.labels.data_ptr(), fl.labels.data(), size_t(n) * 8);
  try {
    make_dirs(cache);
    write_pixel_cache(cpath, fl.fingerprint, ds, size);
  } catch (const Error& e) {
    warn(str("no pixel cache: ", e.what()));
  }
  return ds;
}

// Normalization constants of the training split, through the JSON cache.
void train_stats(Dataset& train, uint64_t fingerprint, const std::string& cache, const std::string& tag) {
  const std::string path = join_path(cache, tag + "-stats.json");
  // The cached values count when the file is readable, belongs to these images and holds, per
  // channel, a mean in [0, 1] and a std in (0, 1] (pixels scaled to [0, 1]); anything else is
  // recomputed and the file rewritten.
  auto cached = [&]() {
    try {
      Json j = Json::parse(read_file(path));
      if (j.at("fingerprint").as_string() != hex64(fingerprint) || j.at("count").as_int() != train.size()) return false;
      std::vector<double> mean, sd;
      for (const Json& v : j.at("mean").elements()) mean.push_back(v.as_double());
      for (const Json& v : j.at("std").elements()) sd.push_back(v.as_double());
      if (int64_t(mean.size()) != train.channels() || int64_t(sd.size()) != train.channels()) return false;
      for (size_t c = 0; c < mean.size(); ++c)
        if (!(mean[c] >= 0 && mean[c] <= 1 && sd[c] > 0 && sd[c] <= 1)) return false;
      train.mean = std::move(mean);
      train.std = std::move(sd);
      return true;
    } catch (const std::exception&) {
      return false;  // unreadable
    }
  };
  if (is_file(path) && cached()) return;
  channel_stats(train.images, train.mean, train.std);
  Json j = Json::object();
  j["fingerprint"] = hex64(fingerprint);
  j["count"] = train.size();
  j["mean"] = Json(train.mean);
  j["std"] = Json(train.std);
  try {
    make_dirs(cache);
    write_file_atomic(path, j.dump(2) + "\n");
  } catch (const Error& e) {
    warn(str("could not cache the normalization constants: ", e.what()));
  }
}

Dataset concat(const Dataset& a, const Dataset& b, const std::string& name) {
  Dataset o;
  o.name = name;
  Shape s = a.images.shape();
  s[0] = a.size() + b.size();
  o.images = empty(s, DType::u8);
  o.labels = empty({s[0]}, DType::i64);
  std::memcpy(o.images.data_ptr(), a.images.data_ptr(), size_t(a.images.numel()));
  std::memcpy(static_cast<uint8_t*>(o.images.data_ptr()) + a.images.numel(), b.images.data_ptr(),
              size_t(b.images.numel()));
  std::memcpy(o.labels.data_ptr(), a.labels.data_ptr(), size_t(a.size()) * 8);
  std::memcpy(o.labels.data<int64_t>() + a.size(), b.labels.data_ptr(), size_t(b.size()) * 8);
  return o;
}

void finish(Splits& s, const std::vector<std::string>& classes, int64_t k) {
  for (Dataset* d : {&s.train, &s.test}) {
    d->num_classes = k;
    d->class_names = classes;
  }
  if (s.valid) {
    s.valid->num_classes = k;
    s.valid->class_names = classes;
    s.valid->mean = s.train.mean;
    s.valid->std = s.train.std;
  }
  s.test.mean = s.train.mean;
  s.test.std = s.train.std;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
Splits load_cinic10(const std::string& dir, const LoadOptions& opt) {
  const std::string layout =
      "expected the CINIC-10 folder tree DIR/{train,valid,test}/<class>/*.png with the 10 class folders "
      "airplane automobile bird cat deer dog frog horse ship truck and 32x32 PNG images, as extracted from "
      "CINIC-10.tar.gz (https://datashare.ed.ac.uk/handle/10283/3192)";
  require_data_dir("cinic10", dir, layout);
  std::vector<std::string> classes;
  std::map<std::string, FileList> lists;
  uint64_t all = 1469598103934665603ull;
  for (const char* split : {"train", "valid", "test"}) {
    const std::string sd = join_path(dir, split);
    MINIMA_CHECK(is_dir(sd), "cinic10: missing folder ", sd, "; ", layout);
    std::vector<std::string> cls;
    for (const auto& c : list_dir(sd, true))
      if (c[0] != '.') cls.push_back(c);
    if (classes.empty()) classes = cls;
    MINIMA_CHECK(cls == classes, "cinic10: ", sd, " has class folders ", cls, " but ", join_path(dir, "train"), " has ",
                 classes);
    MINIMA_CHECK(cls.size() == 10, "cinic10: ", sd, " has ", cls.size(), " class folders ", cls, "; ", layout);
    FileList& fl = lists[split];
    for (size_t k = 0; k < cls.size(); ++k) {
      const size_t before = fl.paths.size();
      add_folder(fl, join_path(sd, cls[k]), std::string(split) + "/" + cls[k], int64_t(k));
      MINIMA_CHECK(fl.paths.size() > before, "cinic10: no PNG files in ", join_path(sd, cls[k]), "; ", layout);
    }
    fnv(all, &fl.fingerprint, 8);
  }
  const std::string cache = cache_dir_for(dir, opt);
  Splits s;
  s.train = load_split("cinic10", "train", lists["train"], 32, true, cache, opt);
  Dataset valid = load_split("cinic10", "valid", lists["valid"], 32, true, cache, opt);
  s.test = load_split("cinic10", "test", lists["test"], 32, true, cache, opt);
  if (opt.merge_valid) {
    s.train = concat(s.train, valid, "cinic10/train+valid");
    fnv(all, "merged", 6);
    train_stats(s.train, all, cache, "cinic10-train+valid");
  } else {
    s.valid = valid;
    train_stats(s.train, lists["train"].fingerprint, cache, "cinic10-train");
  }
  finish(s, classes, 10);
  return s;
}

// ---------------------------------------------------------------------------------------------
namespace {
struct Superclass {
  const char* name;
  int lo, hi;  // ImageNet class indices, inclusive
};
const Superclass kRestricted[] = {{"dog", 151, 268},  {"cat", 281, 285},  {"frog", 30, 32},
                                  {"turtle", 33, 37}, {"bird", 80, 100},  {"primate", 365, 382},
                                  {"fish", 389, 397}, {"crab", 118, 121}, {"insect", 300, 319}};
}  // namespace

// The 1000 synsets in class-index order: from DIR/LOC_synset_mapping.txt or DIR/synsets.txt (first
// word of each line) when present, else the sorted synset folders of DIR/train (which must then
// number 1000). Empty when neither gives 1000.
std::vector<std::string> imagenet_synsets(const std::string& dir, std::string& source) {
  for (const char* name : {"LOC_synset_mapping.txt", "synsets.txt"}) {
    const std::string p = join_path(dir, name);
    if (!is_file(p)) continue;
    std::vector<std::string> out;
    std::string text = read_file(p), line;
    size_t at = 0;
    while (at <= text.size()) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      line = text.substr(at, nl - at);
      at = nl + 1;
      size_t b = line.find_first_not_of(" \t\r");
      if (b == std::string::npos) continue;
      size_t e = line.find_first_of(" \t\r,", b);
      out.push_back(line.substr(b, e == std::string::npos ? std::string::npos : e - b));
    }
    MINIMA_CHECK(out.size() == 1000, "restricted-imagenet: ", p, " lists ", out.size(),
                 " synsets, expected 1000 (one per line, in ImageNet class-index order)");
    // Each names a folder under train/ and val/: a plain name, once (a repeat would load one
    // folder under two labels, a path would read outside the data directory).
    std::map<std::string, size_t> line_of;
    for (size_t k = 0; k < out.size(); ++k) {
      const std::string& s = out[k];
      MINIMA_CHECK(s != "." && s != ".." && s.find('/') == std::string::npos, "restricted-imagenet: ", p, ": synset ",
                   k + 1, " is '", s, "', not a folder name");
      auto [it, fresh] = line_of.emplace(s, k);
      MINIMA_CHECK(fresh, "restricted-imagenet: ", p, ": synset ", s, " is listed twice (synsets ", it->second + 1,
                   " and ", k + 1, ")");
    }
    source = p;
    return out;
  }
  std::vector<std::string> syn;
  for (const auto& c : list_dir(join_path(dir, "train"), true))
    if (c[0] != '.') syn.push_back(c);
  source = join_path(dir, "train");
  return syn;
}

Splits load_restricted_imagenet(const std::string& dir, const LoadOptions& opt) {
  const std::string layout =
      "expected an ImageNet (ILSVRC2012) folder tree DIR/train/<synset>/*.JPEG and DIR/val/<synset>/*.JPEG, "
      "as produced from ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (https://image-net.org/download.php; "
      "the validation images sorted into synset folders); the class index of a synset is its line in "
      "DIR/LOC_synset_mapping.txt (or DIR/synsets.txt) when present, else its position among all 1000 sorted "
      "synset folders of DIR/train";
  require_data_dir("restricted-imagenet", dir, layout);
  MINIMA_CHECK(opt.image_size >= 8 && opt.image_size <= 512, "restricted-imagenet: image size must be in 8..512, got ",
               opt.image_size);
  for (const char* split : {"train", "val"})
    MINIMA_CHECK(is_dir(join_path(dir, split)), "restricted-imagenet: missing folder ", join_path(dir, split), "; ",
                 layout);
  std::string source;
  const std::vector<std::string> synsets = imagenet_synsets(dir, source);
  MINIMA_CHECK(synsets.size() == 1000, "restricted-imagenet: ", source, " has ", synsets.size(),
               " synset folders, expected 1000 (or a LOC_synset_mapping.txt); ", layout);
  std::map<std::string, FileList> lists;
  for (const char* split : {"train", "val"}) {
    const std::string sd = join_path(dir, split);
    FileList& fl = lists[split];
    for (int64_t k = 0; k < int64_t(std::size(kRestricted)); ++k)
      for (int idx = kRestricted[k].lo; idx <= kRestricted[k].hi; ++idx) {
        const std::string folder = join_path(sd, synsets[size_t(idx)]);
        MINIMA_CHECK(is_dir(folder), "restricted-imagenet: missing folder ", folder, " of class index ", idx, " (",
                     kRestricted[k].name, "); ", layout);
        add_folder(fl, folder, std::string(split) + "/" + synsets[size_t(idx)], k);
      }
    const int64_t size = opt.image_size;
    fnv(fl.fingerprint, &size, sizeof size);
  }
  const std::string cache = cache_dir_for(dir, opt);
  const int64_t S = opt.image_size;
  Splits s;
  s.train = load_split("restricted-imagenet", "train", lists["train"], S, false, cache, opt);
  s.test = load_split("restricted-imagenet", "val", lists["val"], S, false, cache, opt);
  s.test.name = "restricted-imagenet/test";
  train_stats(s.train, lists["train"].fingerprint, cache, str("restricted-imagenet-", S));
  finish(s, restricted_imagenet_classes(), int64_t(std::size(kRestricted)));
  return s;
}

}  // namespace minima::data
