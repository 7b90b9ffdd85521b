// data/image_io.cpp: stb-based image decoding and the decoding thread pool (see data/image_io.h).
// The stb implementations are compiled here with static linkage, so they cannot clash with another
// translation unit that also includes stb.
#include "data/image_io.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "data/io.h"

#ifdef MINIMA_HAS_STB
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#include <stb_image.h>
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>
#pragma GCC diagnostic pop
#endif

namespace minima::data {

#ifdef MINIMA_HAS_STB

bool have_image_decoder() { return true; }

// The format a file's first bytes (its signature) say it is: "PNG", "JPEG", or "" for neither.
static std::string image_format(const std::vector<uint8_t>& b) {
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() >= 8 && std::memcmp(b.data(), png, 8) == 0) return "PNG";
  if (b.size() >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return "JPEG";
  return "";
}

// The format a file's name says it is, as image_format.
static std::string format_of_name(const std::string& path) {
  const std::string ext = file_extension(path);
  if (ext == ".png") return "PNG";
  if (ext == ".jpg" || ext == ".jpeg") return "JPEG";
  return "";
}

void decode_image_file(const std::string& path, int64_t size, bool exact_size, uint8_t* out) {
  std::vector<uint8_t> bytes = read_bytes(path);
  MINIMA_CHECK(!bytes.empty(), path, ": empty image file");
  MINIMA_CHECK(bytes.size() < (size_t(1) << 31), path, ": image file too large (", bytes.size(), " bytes)");
  int w = 0, h = 0, n = 0;
  unsigned char* px = stbi_load_from_memory(bytes.data(), int(bytes.size()), &w, &h, &n, 3);
  if (!px) {
    // stb tries its decoders in turn and keeps the last reason given: when the JPEG decoder gives
    // none, what is left is the PNG test's "bad png sig", even for a file that is plainly a JPEG.
    // So the message names the format the file's signature (or else its name) says, and keeps
    // stb's reason only when it comes from that format's decoder.
    const std::string by_bytes = image_format(bytes), format = by_bytes.empty() ? format_of_name(path) : by_bytes;
    const char* why = stbi_failure_reason();
    std::string reason = why && *why ? why : "";
    if (reason == "bad png sig" && format != "PNG") reason.clear();
    if (format.empty())
      throw Error(str(path, ": cannot decode image (", bytes.size(), " bytes): it is neither a PNG nor a JPEG"));
    if (by_bytes.empty())
      throw Error(str(path, ": cannot decode it as a ", format, " (", bytes.size(), " bytes): its name says ", format,
                      ", but it does not start as one does: the file is truncated or corrupt"));
    throw Error(str(path, ": cannot decode it as a ", format, " (", bytes.size(), " bytes",
                    reason.empty() ? "" : ", " + reason, "): the file is truncated or corrupt"));
  }
  std::unique_ptr<unsigned char, void (*)(void*)> keep(px, stbi_image_free);
  const int64_t S = size;
  if (exact_size) {
    MINIMA_CHECK(w == S && h == S, path, ": image is ", w, "x", h, ", expected ", S, "x", S);
  }
  // The centered square, resized to S x S when it is not already that size (HWC, 3 channels).
  const int side = std::min(w, h), x0 = (w - side) / 2, y0 = (h - side) / 2;
  const unsigned char* square = px + (size_t(y0) * size_t(w) + size_t(x0)) * 3;
  std::vector<unsigned char> resized;
  const unsigned char* hwc = square;
  int64_t stride = int64_t(w) * 3;
  if (side != S) {
    resized.resize(size_t(S * S * 3));
    int ok = stbir_resize_uint8(square, side, side, int(stride), resized.data(), int(S), int(S), int(S * 3), 3);
    MINIMA_CHECK(ok, path, ": resizing ", side, "x", side, " to ", S, "x", S, " failed");
    hwc = resized.data();
    stride = S * 3;
  }
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) out[(c * S + y) * S + x] = hwc[y * stride + x * 3 + c];
}

Tensor decode_images(const std::vector<std::string>& paths, int64_t size, bool exact_size, int threads, bool verbose,
                     const std::string& what) {
  const int64_t N = int64_t(paths.size()), per = 3 * size * size;
  Tensor images = empty({N, 3, size, size}, DType::u8);
  uint8_t* base = images.data<uint8_t>();
  int nt = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  nt = int(std::min<int64_t>(nt, std::max<int64_t>(1, N)));
  std::atomic<int64_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::string first_error;
  auto work = [&] {
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (i >= N || failed.load()) return;
      try {
        decode_image_file(paths[size_t(i)], size, exact_size, base + i * per);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> g(mu);
        if (!failed.exchange(true)) first_error = e.what();
        return;
      }
      const int64_t d = done.fetch_add(1) + 1;
      if (verbose && (d % 20000 == 0 || d == N)) {
        std::lock_guard<std::mutex> g(mu);
        std::fprintf(stderr, "%s: decoded %lld/%lld images\n", what.c_str(), (long long)d, (long long)N);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < nt; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (failed) throw Error(first_error);
  return images;
}

#else  // no stb: folder datasets are unavailable

bool have_image_decoder() { return false; }
static const char* kNoStb = "image folders need stb_image: install libstb-dev (Debian) and reconfigure minima";
void decode_image_file(const std::string&, int64_t, bool, uint8_t*) { throw Error(kNoStb); }
Tensor decode_images(const std::vector<std::string>&, int64_t, bool, int, bool, const std::string&) {
  throw Error(kNoStb);
}

#endif

}  // namespace minima::data
