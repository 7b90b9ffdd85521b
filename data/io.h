// data/io.h: file-system and byte-level helpers shared by the dataset loaders: whole-file reads,
// gzip decompression (zlib), directory listings and big-endian integers. Every error names the
// file and, for malformed content, the byte offset where the problem was found.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace minima::data {

bool is_dir(const std::string& path);
bool is_file(const std::string& path);
bool dir_writable(const std::string& path);
// Throws "<dataset>: data directory <dir> does not exist; <layout>" (or "is not a directory", for
// a file or anything else there) unless `dir` is a directory.
void require_data_dir(const std::string& dataset, const std::string& dir, const std::string& layout);
std::string join_path(const std::string& a, const std::string& b);
// Entry names (not paths) of a directory, sorted bytewise; `dirs_only` keeps sub-directories only.
std::vector<std::string> list_dir(const std::string& path, bool dirs_only = false);
// Lower-cased extension with the dot (".png") of a file name or path, or "" when there is none (a
// dot before the last '/' or leading the name, as in ".hidden", does not start one).
std::string file_extension(const std::string& name);
// $XDG_CACHE_HOME/minima, else $HOME/.cache/minima (created on demand by the caller).
std::string user_cache_dir();
void make_dirs(const std::string& path);

std::vector<uint8_t> read_bytes(const std::string& path);
// The decompressed content of a gzip file (several members are concatenated, as gzip does).
// `what` names the file in errors; offsets in them are offsets into the compressed bytes. More
// than `limit` bytes of content is an error (a few megabytes of gzip can inflate to gigabytes),
// unless `prefix`: then only the first `limit` bytes are decompressed and returned.
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& compressed, const std::string& what, size_t limit = SIZE_MAX,
                            bool prefix = false);
inline bool is_gzip(const std::vector<uint8_t>& b) { return b.size() >= 2 && b[0] == 0x1f && b[1] == 0x8b; }
// Reads `path`, decompressing when it starts with the gzip magic bytes 1f 8b.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);
// Writes bytes atomically (temporary file + rename); throws naming the path on failure.
void write_bytes_atomic(const std::string& path, const void* data, size_t n);

inline uint32_t read_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace minima::data
