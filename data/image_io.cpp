// data/image_io.cpp: stb-based image decoding and the decoding thread pool (see data/image_io.h).
// The stb implementations are compiled here with static linkage, so they cannot clash with another
// translation unit that also includes stb.
#include "data/image_io.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
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

// Why a JPEG's Huffman tables cannot be handed to stb, or "" when they can. stb_image 2.27 (the
// Debian package's) trusts a DHT table's 16 code counts: when they add up to more than 256, it
// writes past the table's 257-entry arrays (found by decoding randomly damaged JPEG files under
// UBSan; one flipped bit in a count is enough). No sound JPEG has such a table, so the file is
// refused before stb reads it. The walk follows the layout stb reads: a marker is 0xFF, any number
// of 0xFF fill bytes, then its code; all but SOI, EOI, TEM and the restarts RST0-7 carry a
// 16-bit big-endian length that counts itself; a start of scan (SOS) is followed by entropy-coded
// bytes, in which 0xFF is followed by 0x00 (a stuffed 0xFF) or a restart, up to the next marker.
// Between the segments before the frame header (SOF0-2), stb skips bytes that are not a marker up
// to the next 0xFF. A DHT segment holds tables of one class/index byte, 16 counts and their sum of
// symbols. The walk stops without a verdict where the file is not a JPEG (stb's test for one also
// lets fill bytes precede SOI), is cut short or stops making sense: stb then refuses it for that
// reason, which the caller reports.
static std::string jpeg_huffman_problem(const std::vector<uint8_t>& b) {
  const size_t n = b.size();
  bool frame = false;  // past the frame header
  for (size_t i = 0, markers = 0; i < n; ++markers) {
    if (b[i] != 0xff) {
      if (frame || markers < 2) return "";  // stb refuses a marker that is not one
      while (i < n && b[i] != 0xff) ++i;    // padding stb scans past
      if (i >= n) return "";
    }
    while (i < n && b[i] == 0xff) ++i;  // fill bytes
    if (i >= n) return "";
    const uint8_t m = b[i++];
    frame |= m == 0xc0 || m == 0xc1 || m == 0xc2;
    if (markers == 0 && m != 0xd8) return "";                          // not a JPEG
    if (m == 0xd9) return "";                                          // EOI
    if (m == 0xd8 || m == 0x01 || (m >= 0xd0 && m <= 0xd7)) continue;  // SOI, TEM, RSTn: no length
    if (i + 2 > n) return "";
    const size_t len = size_t(b[i]) << 8 | b[i + 1];
    if (m == 0xc4) {
      // As stb reads it: a table while the segment has bytes left, reading past the segment's end
      // (and as zeros past the file's) before it checks the length.
      const auto at = [&](size_t k) { return k < n ? b[k] : uint8_t(0); };
      size_t t = i + 2;
      while (t < i + len) {
        if (at(t) >> 4 > 1 || (at(t) & 15) > 3) return "";  // stb refuses the class or index itself
        size_t codes = 0;
        for (size_t k = 1; k <= 16; ++k) codes += at(t + k);
        if (codes > 256)
          return str("its Huffman table ", at(t) >> 4 ? "AC" : "DC", at(t) & 15, " defines ", codes,
                     " codes, more than the 256 symbols there are");
        t += 17 + codes;
      }
      if (t != i + len) return "";  // stb refuses a segment whose tables overrun its length
    }
    if (len < 2 || i + len > n) return "";
    i += len;
    if (m == 0xda) {  // the scan's entropy-coded bytes, up to the next marker
      for (;;) {
        while (i < n && b[i] != 0xff) ++i;
        size_t j = i;
        while (j < n && b[j] == 0xff) ++j;  // stb reads 0xFF 0xFF 0x00 as data too
        if (j >= n) return "";
        if (b[j] != 0x00 && !(b[j] >= 0xd0 && b[j] <= 0xd7)) break;  // a marker that ends the scan
        i = j + 1;
      }
    }
  }
  return "";
}

// Why a PNG's chunks cannot be trusted, or "" when they can. stb checks neither the chunks' CRCs
// nor zlib's Adler-32, so a bit flipped in the compressed pixels of a PNG decodes, without a word,
// to other pixels (or fails later with a vaguer reason). Each chunk is 4 bytes of big-endian data
// length, 4 of type, the data, then the CRC-32 of type and data; the walk ends at IEND, or where
// the file is cut short, which stb reports.
static std::string png_crc_problem(const std::vector<uint8_t>& b) {
  const auto be32 = [&](size_t k) {
    return uint32_t(b[k]) << 24 | uint32_t(b[k + 1]) << 16 | uint32_t(b[k + 2]) << 8 | uint32_t(b[k + 3]);
  };
  for (size_t i = 8; i + 12 <= b.size();) {  // past the signature
    const size_t len = be32(i);
    if (len > b.size() - i - 12) return "";
    const std::string type(b.begin() + std::ptrdiff_t(i + 4), b.begin() + std::ptrdiff_t(i + 8));
    const bool named = std::all_of(type.begin(), type.end(), [](char c) { return std::isalpha(uint8_t(c)); });
    const uint32_t crc = uint32_t(crc32(crc32(0L, Z_NULL, 0), b.data() + i + 4, uInt(len + 4)));
    if (crc != be32(i + 8 + len))
      return str("its ", named ? type + " chunk" : "chunk", " at byte ", i, " does not match its CRC");
    if (type == "IEND") return "";
    i += 12 + len;
  }
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
  const std::string jpeg_problem = jpeg_huffman_problem(bytes);
  MINIMA_CHECK(jpeg_problem.empty(), path, ": cannot decode it as a JPEG (", bytes.size(), " bytes): ", jpeg_problem,
               ": the file is corrupt");
  if (image_format(bytes) == "PNG") {
    const std::string problem = png_crc_problem(bytes);
    MINIMA_CHECK(problem.empty(), path, ": cannot decode it as a PNG (", bytes.size(), " bytes): ", problem,
                 ": the file is corrupt");
  }
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
