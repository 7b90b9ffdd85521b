// nn/safetensors.h: reading and writing the safetensors format (the file format of PyTorch
// checkpoints on the Hugging Face hub): an 8-byte little-endian header length N, N bytes of JSON
// header {"__metadata__": {string: string}, name: {"dtype", "shape", "data_offsets": [begin, end]}}
// padded with spaces to a multiple of 8, then the raw little-endian tensor bytes, offsets relative
// to the end of the header. Supported dtypes: F32, F64, BF16, I64, U8.
//
// Saving writes a temporary file beside `path` (core/atomic_file.h) and renames it over `path`, so a
// crash never leaves a torn file.
//
// Saving also writes a checksum into __metadata__ under kChecksumKey: JSON {"header": h,
// "tensors": {name: t}}, each a checksum64 (core/checksum.h) in 16 hex digits; h covers the header
// without that entry (compact JSON, file order), t a tensor's bytes. Loading verifies it, names the
// tensors whose bytes changed, and leaves the entry out of the metadata it returns, so a file read,
// edited and saved again gets a fresh one. Files without the entry (written by other tools, or by
// minima before it wrote one) load unchecked. Other readers see one more metadata string.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace minima::nn {

using Metadata = std::vector<std::pair<std::string, std::string>>;

// The metadata key of the checksum that saving writes (reserved: save refuses it as an input).
inline constexpr const char* kChecksumKey = "minima.checksum";

// What load_safetensors throws when a file's bytes do not match its checksum (or the checksum
// entry is damaged), so that a caller can say what to do about a damaged file.
class ChecksumError : public Error {
 public:
  using Error::Error;
};

struct SafeTensors {
  NamedTensors tensors;            // on the CPU, in file order
  Metadata metadata;               // without the checksum entry
  bool checksum_verified = false;  // the file had a checksum entry, and it held
  const Tensor* find(const std::string& name) const;
  const std::string* meta(const std::string& key) const;
};

// Tensors may live on any device and be non-contiguous; they are copied to the CPU to write.
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});
// Throws minima::Error naming the path and the problem (truncated file, bad header, bad offsets,
// bytes that do not match the checksum).
SafeTensors load_safetensors(const std::string& path);

// Copies `src` into the module's parameters and buffers in place (any device; handles stay valid).
// Checks that the names are exactly the module's state_dict keys and that shapes and dtypes match,
// and reports every mismatch (missing, unexpected, wrong shape, wrong dtype) in one error.
// Entries whose name starts with one of `ignore_prefixes` are skipped.
void load_state_dict(Module& m, const NamedTensors& src, const std::vector<std::string>& ignore_prefixes = {});

const char* safetensors_dtype(DType t);

}  // namespace minima::nn
