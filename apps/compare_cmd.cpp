// apps/compare_cmd.cpp: `minima compare --a A.safetensors --b B.safetensors`: two weights or
// checkpoint files, tensor by tensor. Each tensor of either file is matched by name and reported as
// bitwise equal, or with its largest absolute and relative difference and how many of its values
// lie outside the tolerance (|a - b| > atol + rtol * |b|; a NaN matches only a NaN). The tolerance
// is zero unless given, so by default the command asks "bitwise the same?", as the README claims of
// a resumed run and a run with --deterministic. Exit status 0 when every tensor is within the
// tolerance, 1 otherwise (with an error line that says how many differ).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>

#include "apps/cli.h"
#include "core/json.h"
#include "nn/safetensors.h"

namespace minima::app {
namespace {

struct Difference {
  std::string name;
  std::string problem;  // a tensor missing from one file, or a shape or dtype mismatch
  bool bitwise = false;
  double max_abs = 0, max_rel = 0;
  int64_t outside = 0, numel = 0;
};

Difference problem(const std::string& name, const std::string& what) {
  Difference d;
  d.name = name;
  d.problem = what;
  return d;
}

Difference compare_tensors(const std::string& name, const Tensor& a, const Tensor& b, double atol, double rtol) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape())
    return problem(name, str(nn::safetensors_dtype(a.dtype()), " ", shape_str(a.shape()), " against ",
                             nn::safetensors_dtype(b.dtype()), " ", shape_str(b.shape())));
  Difference d;
  d.name = name;
  d.numel = a.numel();
  const size_t bytes = size_t(a.numel()) * a.element_size();
  d.bitwise = bytes == 0 || std::memcmp(a.data_ptr(), b.data_ptr(), bytes) == 0;
  if (d.bitwise) return d;
  const Tensor da = a.to(DType::f64), db = b.to(DType::f64);
  const double *pa = da.data<double>(), *pb = db.data<double>();
  for (int64_t i = 0; i < d.numel; ++i) {
    const double x = pa[i], y = pb[i];
    if (std::isnan(x) || std::isnan(y)) {
      d.outside += std::isnan(x) != std::isnan(y);
      continue;
    }
    if (x == y) continue;                  // equal infinities, or zeros of either sign
    const double diff = std::fabs(x - y);  // inf when an infinity meets a finite value
    d.max_abs = std::max(d.max_abs, diff);
    d.max_rel = std::max(d.max_rel, diff / std::max(std::fabs(x), std::fabs(y)));
    d.outside += !(diff <= atol + rtol * std::fabs(y));
  }
  return d;
}

int run_compare(cli::Args& a) {
  a.set_description(
      "Compares two safetensors files tensor by tensor: bitwise equal, or the largest absolute and relative\n"
      "difference and the count of values outside |a - b| <= atol + rtol * |b|. Exits 1 when a tensor is\n"
      "outside the tolerance, missing from one file, or of another shape or dtype.");
  const std::string path_a = a.get_string("a", "", "the first .safetensors file (required)");
  const std::string path_b = a.get_string("b", "", "the second .safetensors file, the reference for rtol (required)");
  const double atol =
      a.get_double("atol", 0.0, "absolute tolerance (0 with --rtol 0: equal values, zeros of either sign alike)");
  const double rtol = a.get_double("rtol", 0.0, "relative tolerance, of |b|");
  const bool json = a.get_flag("json", "print one JSON object instead of the table");
  if (a.finish()) return 0;
  MINIMA_CHECK(!path_a.empty() && !path_b.empty(), "compare: --a and --b are both required");
  MINIMA_CHECK(atol >= 0 && rtol >= 0, "compare: --atol and --rtol must be >= 0, got ", atol, " and ", rtol);
  const nn::SafeTensors fa = nn::load_safetensors(path_a), fb = nn::load_safetensors(path_b);

  std::vector<Difference> rows;
  for (const auto& [name, t] : fa.tensors) {
    const Tensor* other = fb.find(name);
    rows.push_back(other ? compare_tensors(name, t, *other, atol, rtol) : problem(name, "only in --a"));
  }
  for (const auto& [name, t] : fb.tensors)
    if (!fa.find(name)) rows.push_back(problem(name, "only in --b"));
  int64_t differ = 0, bitwise = 0;
  for (const Difference& d : rows) {
    differ += !d.problem.empty() || d.outside > 0;
    bitwise += d.bitwise;
  }
  // Metadata entries that differ are reported (a run's seed or dataset), but do not fail it.
  std::map<std::string, std::pair<std::string, std::string>> meta;
  for (const auto& [k, v] : fa.metadata) meta[k].first = v;
  for (const auto& [k, v] : fb.metadata) meta[k].second = v;
  std::vector<std::string> meta_differ;
  for (const auto& [k, v] : meta)
    if (v.first != v.second) meta_differ.push_back(k);

  if (json) {
    Json out = Json::object();
    out["a"] = path_a;
    out["b"] = path_b;
    out["atol"] = atol;
    out["rtol"] = rtol;
    out["tensors"] = int64_t(rows.size());
    out["bitwise_equal"] = bitwise;
    out["differ"] = differ;
    out["metadata_differ"] = Json(meta_differ);
    Json ts = Json::array();
    for (const Difference& d : rows) {
      Json e = Json::object();
      e["name"] = d.name;
      if (!d.problem.empty()) {
        e["problem"] = d.problem;
      } else {
        e["bitwise_equal"] = d.bitwise;
        e["max_abs"] = d.max_abs;  // inf when an infinity meets a finite value: written as null
        e["max_rel"] = d.max_rel;
        e["outside"] = d.outside;
      }
      ts.push_back(e);
    }
    out["per_tensor"] = ts;
    std::cout << out.dump(2) << "\n";
  } else {
    size_t w = 4;
    for (const Difference& d : rows) w = std::max(w, d.name.size());
    std::printf("%-*s  %-14s %10s %10s %12s\n", int(w), "name", "", "max |a-b|", "max rel", "outside tol");
    for (const Difference& d : rows) {
      if (!d.problem.empty())
        std::printf("%-*s  %s\n", int(w), d.name.c_str(), d.problem.c_str());
      else if (d.bitwise)
        std::printf("%-*s  %-14s\n", int(w), d.name.c_str(), "bitwise equal");
      else
        std::printf("%-*s  %-14s %10s %10s %12lld\n", int(w), d.name.c_str(), d.outside ? "differs" : "within tol",
                    cli::fmt(d.max_abs, 3).c_str(), cli::fmt(d.max_rel, 3).c_str(), (long long)d.outside);
    }
    for (const std::string& k : meta_differ)
      std::printf("metadata '%s': '%s' against '%s'\n", k.c_str(), meta[k].first.c_str(), meta[k].second.c_str());
    if (differ == 0 && bitwise == int64_t(rows.size()))
      std::printf("all %lld tensors bitwise equal\n", (long long)rows.size());
    else if (differ == 0)
      std::printf("%lld tensors: %lld bitwise equal, the other %lld within --atol %s --rtol %s\n",
                  (long long)rows.size(), (long long)bitwise, (long long)(int64_t(rows.size()) - bitwise),
                  cli::fmt(atol, 3).c_str(), cli::fmt(rtol, 3).c_str());
  }
  MINIMA_CHECK(differ == 0, "compare: ", differ, " of ", rows.size(), " tensors differ beyond --atol ", atol,
               " --rtol ", rtol);
  return 0;
}

cli::Register reg("compare", "two weights or checkpoint files, tensor by tensor: bitwise equal, or by how much not",
                  run_compare);

}  // namespace
}  // namespace minima::app
