// nn/safetensors.cpp: see safetensors.h. The byte order of the host is assumed little-endian
// (x86-64 and the GPU hosts); a static check refuses to build elsewhere.
#include "nn/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <tuple>

#include "core/atomic_file.h"
#include "core/checksum.h"
#include "core/json.h"

namespace minima::nn {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
  }
  return "?";
}

static bool parse_dtype(const std::string& s, DType& t) {
  static const std::map<std::string, DType> m = {{"F32", DType::f32},
                                                 {"F64", DType::f64},
                                                 {"BF16", DType::bf16},
                                                 {"I64", DType::i64},
                                                 {"U8", DType::u8}};
  auto it = m.find(s);
  if (it == m.end()) return false;
  t = it->second;
  return true;
}

const Tensor* SafeTensors::find(const std::string& name) const {
  for (const auto& [k, t] : tensors)
    if (k == name) return &t;
  return nullptr;
}

const std::string* SafeTensors::meta(const std::string& key) const {
  for (const auto& [k, v] : metadata)
    if (k == key) return &v;
  return nullptr;
}

// The header as its checksum covers it: everything but the checksum entry itself (and the
// __metadata__ object when that entry was all it held), written compactly in file order.
static std::string checksummed_header(const Json& header) {
  Json h = Json::object();
  for (const auto& [key, value] : header.items()) {
    if (key != "__metadata__") {
      h[key] = value;
      continue;
    }
    Json meta = Json::object();
    for (const auto& [k, v] : value.items())
      if (k != kChecksumKey) meta[k] = v;
    if (meta.size()) h[key] = meta;
  }
  return h.dump(-1);
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  std::vector<Tensor> host;
  Json header = Json::object(), sums = Json::object();
  header["__metadata__"] = Json::object();  // written first, before the tensor entries
  for (const auto& [k, v] : metadata) {
    MINIMA_CHECK(k != kChecksumKey, "save_safetensors: the metadata key '", k,
                 "' is reserved for the checksum that saving writes");
    header["__metadata__"][k] = v;
  }
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    MINIMA_CHECK(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    MINIMA_CHECK(name != "__metadata__" && !header.contains(name), "save_safetensors: duplicate or reserved name '",
                 name, "'");
    Tensor c;
    {
      NoGradGuard ng;
      c = t.detach().cpu().contiguous();
    }
    int64_t bytes = c.numel() * int64_t(c.element_size());
    Json e = Json::object();
    e["dtype"] = safetensors_dtype(c.dtype());
    Json shape = Json::array();
    for (int64_t s : c.shape()) shape.push_back(Json(s));
    e["shape"] = shape;
    Json offs = Json::array();
    offs.push_back(Json(offset));
    offs.push_back(Json(offset + bytes));
    e["data_offsets"] = offs;
    header[name] = e;
    sums[name] = hex64(checksum64(c.data_ptr(), size_t(bytes)));
    offset += bytes;
    host.push_back(c);
  }
  const std::string covered = checksummed_header(header);
  Json sum = Json::object();
  sum["header"] = hex64(checksum64(covered.data(), covered.size()));
  sum["tensors"] = sums;
  header["__metadata__"][kChecksumKey] = sum.dump(-1);
  std::string h = header.dump(-1);
  while (h.size() % 8) h += ' ';
  uint64_t n = h.size();

  AtomicFile f(path, AtomicFile::Sync::durable);  // checkpoints and weights: hours of training
  f.write(&n, 8);
  f.write(h.data(), h.size());
  for (const Tensor& c : host) f.write(c.data_ptr(), size_t(c.numel()) * c.element_size());
  f.commit();
}

// Checks a file's tensors and header against the checksum entry that saving wrote.
static void verify_checksum(const std::string& path, const Json& header, const SafeTensors& st,
                            const std::string& entry) {
  const std::string where = str("load_safetensors: '", path, "': ");
  const std::string edited =
      str(" (a file changed on purpose loads once its '", kChecksumKey, "' metadata entry is removed)");
  Json sum;
  uint64_t want = 0;
  try {
    sum = Json::parse(entry);
  } catch (const Error& e) {
    throw ChecksumError(str(where, "the '", kChecksumKey, "' metadata entry is damaged: ", e.what()));
  }
  if (!(sum.is_object() && sum.contains("header") && sum.at("header").is_string() &&
        parse_hex64(sum.at("header").as_string(), want) && sum.contains("tensors") && sum.at("tensors").is_object()))
    throw ChecksumError(str(where, "the '", kChecksumKey, "' metadata entry is damaged: expected {\"header\": <16 hex ",
                            "digits>, \"tensors\": {name: <16 hex digits>}}"));
  const std::string covered = checksummed_header(header);
  if (checksum64(covered.data(), covered.size()) != want)
    throw ChecksumError(str(where,
                            "its header (tensor names, dtypes, shapes, offsets, metadata) does not match the checksum "
                            "written with it: the file was damaged or changed after it was saved",
                            edited));
  const Json& tensors = sum.at("tensors");
  std::vector<std::string> bad;
  for (const auto& [name, t] : st.tensors) {
    uint64_t v = 0;
    const bool ok = tensors.contains(name) && tensors.at(name).is_string() &&
                    parse_hex64(tensors.at(name).as_string(), v) &&
                    checksum64(t.data_ptr(), size_t(t.numel()) * t.element_size()) == v;
    if (!ok) bad.push_back(name);
  }
  if (bad.empty()) return;
  std::string names;
  for (size_t i = 0; i < bad.size() && i < 5; ++i) names += str(i ? ", '" : "'", bad[i], "'");
  if (bad.size() > 5) names += str(" and ", bad.size() - 5, " more");
  throw ChecksumError(str(where, bad.size(), " of ", st.tensors.size(),
                          " tensors do not match the checksums written with them (", names,
                          "): the file was damaged or changed after it was saved", edited));
}

SafeTensors load_safetensors(const std::string& path) {
  struct stat st;
  MINIMA_CHECK(::stat(path.c_str(), &st) == 0, "load_safetensors: cannot open '", path, "': ", std::strerror(errno));
  MINIMA_CHECK(S_ISREG(st.st_mode), "load_safetensors: '", path, "' is not a regular file");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  MINIMA_CHECK(f.good(), "load_safetensors: cannot open '", path, "'");
  int64_t size = int64_t(f.tellg());
  f.seekg(0);
  MINIMA_CHECK(size >= 8, "load_safetensors: '", path, "' is ", size, " bytes, too short for a header length");
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  MINIMA_CHECK(n <= uint64_t(size - 8) && n < (uint64_t(1) << 30), "load_safetensors: '", path, "': header length ", n,
               " exceeds the file size ", size);
  std::string h(n, '\0');
  f.read(h.data(), std::streamsize(n));
  Json header;
  try {
    header = Json::parse(h);
  } catch (const Error& e) {
    throw Error(str("load_safetensors: '", path, "': bad JSON header: ", e.what()));
  }
  MINIMA_CHECK(header.is_object(), "load_safetensors: '", path, "': header is not a JSON object");
  const int64_t data_start = 8 + int64_t(n), data_size = size - data_start;
  SafeTensors out;
  std::vector<std::tuple<int64_t, int64_t, std::string>> spans;  // [begin, end) and the tensor
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : e.items()) {
        MINIMA_CHECK(v.is_string(), "load_safetensors: '", path, "': __metadata__ value of '", k, "' is not a string");
        out.metadata.emplace_back(k, v.as_string());
      }
      continue;
    }
    const std::string& tensor = name;  // a lambda may not capture a structured binding in C++17
    auto where = [&] { return str("load_safetensors: '", path, "', tensor '", tensor, "': "); };
    MINIMA_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"), where(),
                 "entry needs dtype, shape and data_offsets");
    const Json &dtype = e.at("dtype"), &dims = e.at("shape"), &offs = e.at("data_offsets");
    DType dt;
    MINIMA_CHECK(dtype.is_string() && parse_dtype(dtype.as_string(), dt), where(), "unsupported dtype ", dtype.dump(-1),
                 " (supported: F32, F64, BF16, I64, U8)");
    MINIMA_CHECK(dims.is_array(), where(), "shape must be an array of sizes, got ", dims.dump(-1));
    Shape shape;
    for (const auto& s : dims.elements()) {
      MINIMA_CHECK(s.is_integer() && s.as_int() >= 0, where(), "shape ", dims.dump(-1),
                   " must hold non-negative integers");
      shape.push_back(s.as_int());
    }
    MINIMA_CHECK(offs.is_array() && offs.size() == 2 && offs[0].is_integer() && offs[1].is_integer(), where(),
                 "data_offsets must be [begin, end] integers, got ", offs.dump(-1));
    int64_t b = offs[0].as_int(), en = offs[1].as_int(), expect = 0;
    try {
      expect = numel_of(shape);
    } catch (const Error& err) {
      throw Error(where() + err.what());
    }
    MINIMA_CHECK(!__builtin_mul_overflow(expect, int64_t(dtype_size(dt)), &expect), where(), "shape ", shape_str(shape),
                 " is too large");
    MINIMA_CHECK(0 <= b && b <= en && en <= data_size, where(), "data_offsets [", b, ", ", en,
                 "] outside the data section of ", data_size, " bytes (truncated file?)");
    MINIMA_CHECK(en - b == expect, where(), "data_offsets span ", en - b, " bytes but shape ", shape_str(shape), " of ",
                 dtype_name(dt), " needs ", expect);
    Tensor t = empty(shape, dt);
    f.seekg(data_start + b);
    f.read(static_cast<char*>(t.data_ptr()), std::streamsize(expect));
    MINIMA_CHECK(f.good(), where(), "read failed at byte ", data_start + b);
    out.tensors.emplace_back(name, t);
    spans.emplace_back(b, en, name);
  }
  // The tensors must tile the data section, in some order, exactly: an overlap would give two
  // names the same bytes, a gap bytes that belong to nothing (as the format's reference checks).
  std::sort(spans.begin(), spans.end());
  int64_t at = 0;
  std::string prev = "the header";
  for (const auto& [b, en, name] : spans) {
    MINIMA_CHECK(b >= at, "load_safetensors: '", path, "': tensors '", prev, "' and '", name,
                 "' overlap (data_offsets from ", b, ", before ", at, ")");
    MINIMA_CHECK(b == at, "load_safetensors: '", path, "': bytes ", at, " to ", b, " of the data section (after '",
                 prev, "') belong to no tensor");
    at = en;
    prev = name;
  }
  MINIMA_CHECK(at == data_size, "load_safetensors: '", path, "': the data section has ", data_size - at,
               " bytes after the last tensor ('", prev, "') that belong to no tensor");
  // Files that minima wrote carry a checksum; files from elsewhere (or older ones) load without.
  for (auto it = out.metadata.begin(); it != out.metadata.end(); ++it)
    if (it->first == kChecksumKey) {
      verify_checksum(path, header, out, it->second);
      out.metadata.erase(it);
      out.checksum_verified = true;
      break;
    }
  return out;
}

void load_state_dict(Module& m, const NamedTensors& src, const std::vector<std::string>& ignore_prefixes) {
  auto ignored = [&](const std::string& k) {
    for (const auto& p : ignore_prefixes)
      if (k.rfind(p, 0) == 0) return true;
    return false;
  };
  std::map<std::string, Tensor> given;
  for (const auto& [k, t] : src)
    if (!ignored(k)) given[k] = t;
  std::vector<std::string> problems;
  auto dst = m.state_dict();
  std::map<std::string, bool> known;
  for (const auto& [k, t] : dst) {
    known[k] = true;
    auto it = given.find(k);
    if (it == given.end()) {
      problems.push_back(str("missing '", k, "' (", shape_str(t.shape()), " ", dtype_name(t.dtype()), ")"));
      continue;
    }
    const Tensor& s = it->second;
    if (s.shape() != t.shape())
      problems.push_back(
          str("'", k, "': shape ", shape_str(s.shape()), " in the file, ", shape_str(t.shape()), " in the model"));
    if (s.dtype() != t.dtype())
      problems.push_back(
          str("'", k, "': dtype ", dtype_name(s.dtype()), " in the file, ", dtype_name(t.dtype()), " in the model"));
  }
  for (const auto& [k, t] : src)
    if (!ignored(k) && !known.count(k)) problems.push_back(str("unexpected '", k, "' (", shape_str(t.shape()), ")"));
  if (!problems.empty()) {
    std::string msg = str("load_state_dict: ", problems.size(), " mismatch", problems.size() > 1 ? "es" : "",
                          " between the file and the model:");
    for (const auto& p : problems) msg += "\n  " + p;
    throw Error(msg);
  }
  NoGradGuard ng;
  for (auto& [k, t] : dst) t.copy_(given[k]);
}

}  // namespace minima::nn
