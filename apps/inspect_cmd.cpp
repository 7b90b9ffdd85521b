// apps/inspect_cmd.cpp: `minima inspect --file F.safetensors`: what a weights or checkpoint file
// holds, without a model or a dataset: whether its checksum holds, its metadata (the model it
// describes, a checkpoint's training state), and every tensor with its dtype, shape and the range
// of its values, non-finite ones counted apart. The first stop for a run that diverged or a file
// that will not load; `--json` prints the same as one JSON object for scripts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>

#include "apps/cli.h"
#include "core/json.h"
#include "nn/checkpoint.h"

namespace minima::app {
namespace {

struct TensorSummary {
  std::string name, dtype;
  Shape shape;
  int64_t numel = 0, nonfinite = 0;
  double min = NAN, max = NAN, mean = NAN;  // over the finite values (NaN when there are none)
};

TensorSummary summarize(const std::string& name, const Tensor& t) {
  TensorSummary s{name, nn::safetensors_dtype(t.dtype()), t.shape(), t.numel()};
  const Tensor d = t.to(DType::f64);  // exact for every stored dtype but i64 beyond 2^53
  const double* v = d.data<double>();
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
  int64_t finite = 0;
  for (int64_t i = 0; i < s.numel; ++i) {
    if (!std::isfinite(v[i])) continue;
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
    sum += v[i];
    ++finite;
  }
  s.nonfinite = s.numel - finite;
  if (finite > 0) s.min = lo, s.max = hi, s.mean = sum / double(finite);
  return s;
}

std::string num(double v) { return std::isnan(v) ? "-" : cli::fmt(v, 4); }

std::string grouped(int64_t v) {  // 1234567 -> 1,234,567
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

Json number_or_null(double v) { return std::isnan(v) ? Json() : Json(v); }

int run_inspect(cli::Args& a) {
  a.set_description(
      "Prints what a safetensors file holds: whether its checksum holds, its metadata and each tensor's\n"
      "dtype, shape and range of values (non-finite values counted apart). Exits 1 when the file is\n"
      "damaged.");
  const std::string path = a.get_string("file", "", "the .safetensors file, weights or a checkpoint (required)");
  const bool json = a.get_flag("json", "print one JSON object instead of the table");
  if (a.finish()) return 0;
  MINIMA_CHECK(!path.empty(), "inspect: --file is required");
  const nn::SafeTensors f = nn::load_safetensors(path);  // verifies the checksum, if the file has one

  std::vector<TensorSummary> rows;
  int64_t model_values = 0, optimizer_values = 0, model_tensors = 0, nonfinite = 0, bad_tensors = 0;
  for (const auto& [name, t] : f.tensors) {
    rows.push_back(summarize(name, t));
    const bool opt = name.rfind(nn::kOptPrefix, 0) == 0;
    (opt ? optimizer_values : model_values) += t.numel();
    model_tensors += opt ? 0 : 1;
    nonfinite += rows.back().nonfinite;
    bad_tensors += rows.back().nonfinite > 0;
  }
  const auto optimizer_tensors = int64_t(rows.size()) - model_tensors;
  const std::string checksum = f.checksum_verified ? "verified" : "absent";

  if (json) {
    Json out = Json::object();
    out["file"] = path;
    out["checksum"] = checksum;
    Json meta = Json::object();
    for (const auto& [k, v] : f.metadata) meta[k] = v;
    out["metadata"] = meta;
    out["model_values"] = model_values;
    out["optimizer_values"] = optimizer_values;
    out["nonfinite_values"] = nonfinite;
    Json ts = Json::array();
    for (const TensorSummary& r : rows) {
      Json e = Json::object();
      e["name"] = r.name;
      e["dtype"] = r.dtype;
      Json shape = Json::array();
      for (int64_t s : r.shape) shape.push_back(Json(s));
      e["shape"] = shape;
      e["numel"] = r.numel;
      e["min"] = number_or_null(r.min);
      e["max"] = number_or_null(r.max);
      e["mean"] = number_or_null(r.mean);
      e["nonfinite"] = r.nonfinite;
      ts.push_back(e);
    }
    out["tensors"] = ts;
    std::cout << out.dump(2) << "\n";
    return 0;
  }

  std::cout << "file       " << path << "\n";
  std::cout << "checksum   "
            << (f.checksum_verified ? "verified: the header and every tensor match the checksum saved with them"
                                    : "absent (written by another tool, or by minima before it wrote checksums)")
            << "\n";
  std::cout << "tensors    " << model_tensors << " of the model (" << grouped(model_values) << " values)";
  if (optimizer_tensors > 0)
    std::cout << ", " << optimizer_tensors << " of the optimizer (" << grouped(optimizer_values) << " values)";
  std::cout << "\n";
  if (nonfinite > 0)
    std::cout << "non-finite " << grouped(nonfinite) << " values in " << bad_tensors << " tensor"
              << (bad_tensors > 1 ? "s" : "") << "\n";
  for (const auto& [k, v] : f.metadata) std::cout << "metadata   " << k << " = " << v << "\n";

  size_t w = 4;
  for (const TensorSummary& r : rows) w = std::max(w, r.name.size());
  std::cout << "\n";
  std::printf("%-*s  %-5s  %-18s %11s %11s %11s %10s\n", int(w), "name", "dtype", "shape", "min", "max", "mean",
              "non-finite");
  for (const TensorSummary& r : rows)
    std::printf("%-*s  %-5s  %-18s %11s %11s %11s %10s\n", int(w), r.name.c_str(), r.dtype.c_str(),
                shape_str(r.shape).c_str(), num(r.min).c_str(), num(r.max).c_str(), num(r.mean).c_str(),
                grouped(r.nonfinite).c_str());
  return 0;
}

cli::Register reg("inspect", "what a weights or checkpoint file holds: checksum, metadata, tensors and their ranges",
                  run_inspect);

}  // namespace
}  // namespace minima::app
