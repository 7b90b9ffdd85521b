// tests/safetensors_bytes.h: reading and rewriting a .safetensors file's bytes by hand, for the
// tests that damage or edit files the way a disk or a user would.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "core/json.h"
#include "nn/safetensors.h"

namespace testutil {

// The JSON header of a file's bytes; data_start is set to the first byte after it.
inline minima::Json safetensors_header(const std::string& bytes, size_t& data_start) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  data_start = 8 + size_t(n);
  return minima::Json::parse(bytes.substr(8, size_t(n)));
}

// The same file with its checksum entry removed from the metadata, as a file written by another
// tool (or by minima before it wrote checksums) has none; the tensors' bytes are unchanged.
inline std::string without_checksum(const std::string& bytes) {
  size_t data_start = 0;
  minima::Json header = safetensors_header(bytes, data_start);
  minima::Json plain = minima::Json::object();
  for (const auto& [k, v] : header.at("__metadata__").items())
    if (k != minima::nn::kChecksumKey) plain[k] = v;
  header["__metadata__"] = plain;
  std::string h = header.dump(-1);
  while (h.size() % 8) h += ' ';
  const uint64_t n = h.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + h + bytes.substr(data_start);
}

}  // namespace testutil
