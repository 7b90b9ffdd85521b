// data/io.cpp: file-system and gzip helpers for the dataset loaders (see data/io.h).
#include "data/io.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"

namespace minima::data {

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void require_data_dir(const std::string& dataset, const std::string& dir, const std::string& layout) {
  if (is_dir(dir)) return;
  struct stat st;
  const bool exists = ::stat(dir.c_str(), &st) == 0;
  throw Error(str(dataset, ": data directory ", dir, exists ? " is not a directory; " : " does not exist; ", layout));
}

bool dir_writable(const std::string& path) { return ::access(path.c_str(), W_OK | X_OK) == 0; }

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

std::vector<std::string> list_dir(const std::string& path, bool dirs_only) {
  DIR* d = ::opendir(path.c_str());
  MINIMA_CHECK(d != nullptr, "cannot list directory ", path, ": ", std::strerror(errno));
  std::vector<std::string> out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (dirs_only && !is_dir(join_path(path, n))) continue;
    out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string file_extension(const std::string& name) {
  const size_t dot = name.rfind('.'), slash = name.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;  // where the file's own name starts
  if (dot == std::string::npos || dot <= base) return "";
  std::string e = name.substr(dot);
  for (char& c : e) c = char(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

std::string user_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return join_path(x, "minima");
  if (const char* h = std::getenv("HOME"); h && *h) return join_path(join_path(h, ".cache"), "minima");
  return "/tmp/minima-cache";
}

void make_dirs(const std::string& path) {
  std::string cur;
  if (!path.empty() && path[0] == '/') cur = "/";
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    i = j + 1;
    if (part.empty()) continue;
    cur += part + "/";
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
      throw Error(str("cannot create directory ", cur, ": ", std::strerror(errno)));
  }
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  MINIMA_CHECK(f != nullptr, "cannot open ", path, ": ", std::strerror(errno));
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  for (;;) {
    size_t n = std::fread(buf, 1, sizeof buf, f);
    out.insert(out.end(), buf, buf + n);
    if (n < sizeof buf) break;
  }
  bool err = std::ferror(f) != 0;
  std::fclose(f);
  MINIMA_CHECK(!err, "read error in ", path, " after ", out.size(), " bytes");
  return out;
}

std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::string& what, size_t limit, bool prefix) {
  // Inflate straight into the output, sized from the gzip trailer's length field (the size modulo
  // 2^32 of the last member; only a hint, the buffer grows when it is wrong), never beyond one byte
  // past the limit: reaching that byte means the content is larger than allowed.
  const size_t cap = prefix ? limit : (limit == SIZE_MAX ? limit : limit + 1);
  std::vector<uint8_t> out;
  size_t hint = in.size() >= 4 ? size_t(in[in.size() - 4]) | size_t(in[in.size() - 3]) << 8 |
                                     size_t(in[in.size() - 2]) << 16 | size_t(in[in.size() - 1]) << 24
                               : 0;
  out.resize(
      std::min<size_t>(cap, std::max<size_t>(std::min<size_t>(hint, in.size() * 1100 + 1024), in.size() * 2 + 1024)));
  z_stream s;
  std::memset(&s, 0, sizeof s);
  MINIMA_CHECK(inflateInit2(&s, 15 + 16) == Z_OK, "zlib: cannot initialise inflate for ", what);
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = uInt(in.size());
  size_t produced = 0;
  auto truncated = [&] {
    inflateEnd(&s);
    return Error(str(what, ": truncated gzip data: the compressed stream ends at byte offset ", in.size(),
                     " before its end marker (", produced, " bytes decompressed so far)"));
  };
  for (;;) {
    if (produced == cap) {
      inflateEnd(&s);
      if (prefix) return out;
      throw Error(str(what, ": decompresses to more than ", limit, " bytes, the most its format allows here"));
    }
    if (produced == out.size()) out.resize(std::min(cap, out.size() * 2));
    s.next_out = out.data() + produced;
    s.avail_out = uInt(std::min<size_t>(out.size() - produced, 1u << 30));
    const uInt avail_before = s.avail_out;
    const uLong in_before = s.total_in;
    int rc = inflate(&s, Z_NO_FLUSH);
    produced += avail_before - s.avail_out;
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (what `cat a.gz b.gz` produces); trailing zeros are padding.
      bool rest_is_padding = true;
      for (size_t k = size_t(s.total_in); k < in.size(); ++k) rest_is_padding &= in[k] == 0;
      if (rest_is_padding) break;
      uLong total_in = s.total_in;
      inflateReset(&s);
      s.total_in = total_in;  // keep offsets relative to the whole file
      continue;
    }
    if (rc == Z_OK) {
      if (s.avail_in == 0 && s.avail_out != 0) throw truncated();
      continue;
    }
    if (rc == Z_BUF_ERROR && s.total_in == in_before && s.avail_in == 0) throw truncated();
    std::string msg = s.msg ? s.msg : "error code " + std::to_string(rc);
    size_t at = size_t(s.total_in);
    inflateEnd(&s);
    throw Error(str(what, ": corrupt gzip data near compressed byte offset ", at, ": ", msg));
  }
  inflateEnd(&s);
  out.resize(produced);
  return out;
}

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::vector<uint8_t> raw = read_bytes(path);
  if (is_gzip(raw)) return gunzip(raw, path);
  return raw;
}

void write_bytes_atomic(const std::string& path, const void* data, size_t n) {
  AtomicFile f(path);
  f.write(data, n);
  f.commit();
}

}  // namespace minima::data
