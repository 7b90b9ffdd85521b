// nn/checkpoint.cpp: see checkpoint.h.
#include "nn/checkpoint.h"

#include <cmath>
#include <map>
#include <sstream>

#include "core/parse.h"

namespace minima::nn {

namespace {

std::string join_doubles(const std::vector<double>& v) {
  std::ostringstream s;
  s.precision(17);
  for (size_t i = 0; i < v.size(); ++i) s << (i ? "," : "") << v[i];
  return s.str();
}
// Metadata values are text: each is parsed whole, or the error names the entry and what it
// should have been.
int64_t parse_int(const std::string& key, const std::string& v) {
  std::optional<int64_t> r = parse_int64(v);
  MINIMA_CHECK(r.has_value(), "metadata entry '", key, "' should be an integer, got '", v, "'");
  return *r;
}
uint64_t parse_uint(const std::string& key, const std::string& v) {
  std::optional<uint64_t> r = parse_uint64(v);
  MINIMA_CHECK(r.has_value(), "metadata entry '", key, "' should be an unsigned integer, got '", v, "'");
  return *r;
}
std::vector<double> split_doubles(const std::string& key, const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    std::optional<double> d = parse_double(item);
    MINIMA_CHECK(d.has_value(), "metadata entry '", key, "' should be comma-separated finite numbers, got '", s, "'");
    out.push_back(*d);
  }
  return out;
}
const std::string& need(const Metadata& m, const std::string& key) {
  for (const auto& [k, v] : m)
    if (k == key) return v;
  throw Error(str("checkpoint metadata has no '", key, "' entry (was the file written by minima?)"));
}

// Parameter index -> name in m (the optimizer may have been built on m.parameters()).
std::vector<std::string> optimizer_param_names(const Module& m, const optim::Optimizer& opt) {
  std::map<const TensorImpl*, std::string> by_impl;
  for (const auto& [k, t] : m.named_parameters()) by_impl[t.impl()] = k;
  std::vector<std::string> names;
  for (size_t i = 0; i < opt.params().size(); ++i) {
    auto it = by_impl.find(opt.params()[i].impl());
    names.push_back(it != by_impl.end() ? it->second : "param" + std::to_string(i));
  }
  return names;
}
}  // namespace

Metadata ModelInfo::to_metadata() const {
  std::vector<double> shp(in_chw.begin(), in_chw.end());
  std::string in;
  for (size_t i = 0; i < in_chw.size(); ++i) in += (i ? "x" : "") + std::to_string(in_chw[i]);
  Metadata m = {{"arch", arch},
                {"in_shape", in},
                {"classes", std::to_string(classes)},
                {"dataset", dataset},
                {"mean", join_doubles(mean)},
                {"std", join_doubles(std)},
                {"seed", std::to_string(seed)},
                {"format", "minima"}};
  if (coarse_labels) m.emplace_back("labels", "coarse");
  if (merge_valid) m.emplace_back("train_split", "train+valid");
  return m;
}

ModelInfo ModelInfo::from_metadata(const Metadata& m) {
  ModelInfo info;
  info.arch = need(m, "arch");
  std::stringstream ss(need(m, "in_shape"));
  std::string item;
  while (std::getline(ss, item, 'x')) info.in_chw.push_back(parse_int("in_shape", item));
  MINIMA_CHECK(info.in_chw.size() == 3, "checkpoint metadata: in_shape '", need(m, "in_shape"), "' is not CxHxW");
  info.classes = parse_int("classes", need(m, "classes"));
  for (const auto& [k, v] : m) {
    if (k == "dataset") info.dataset = v;
    if (k == "mean") info.mean = split_doubles(k, v);
    if (k == "std") info.std = split_doubles(k, v);
    if (k == "seed") info.seed = parse_uint(k, v);
    if (k == "labels") {
      MINIMA_CHECK(v == "coarse" || v == "fine", "checkpoint metadata: labels '", v, "' is not coarse or fine");
      info.coarse_labels = v == "coarse";
    }
    if (k == "train_split") {
      MINIMA_CHECK(v == "train" || v == "train+valid", "checkpoint metadata: train_split '", v,
                   "' is not train or train+valid");
      info.merge_valid = v == "train+valid";
    }
  }
  return info;
}

Generator* TrainState::rng(const std::string& name) {
  for (auto& [k, g] : rngs)
    if (k == name) return &g;
  return nullptr;
}

void save_weights(const std::string& path, const Module& m, const ModelInfo& info, const Metadata& extra) {
  Metadata meta = info.to_metadata();
  meta.insert(meta.end(), extra.begin(), extra.end());
  save_safetensors(path, m.state_dict(), meta);
}

Metadata load_weights(const std::string& path, Module& m) {
  SafeTensors f = load_safetensors(path);
  try {
    load_state_dict(m, f.tensors, {kOptPrefix});
  } catch (const Error& e) {
    throw Error(str("loading '", path, "': ", e.what()));
  }
  return f.metadata;
}

void save_checkpoint(const std::string& path, const Module& m, const optim::Optimizer& opt, const TrainState& st,
                     const ModelInfo& info, const Metadata& extra) {
  NamedTensors tensors = m.state_dict();
  auto names = optimizer_param_names(m, opt);
  for (const auto& e : opt.state()) tensors.emplace_back(kOptPrefix + names[e.param] + "." + e.slot, e.tensor);
  Json ts = Json::object();
  ts["epoch"] = st.epoch;
  ts["step"] = st.step;
  Json o = Json::object();
  o["type"] = opt.type_name();
  o["steps"] = opt.steps();
  o["lr"] = opt.lr();
  ts["optimizer"] = o;
  Json rngs = Json::object();
  for (const auto& [k, g] : st.rngs) {
    Json r = Json::object();
    r["seed"] = std::to_string(g.seed());
    r["offset"] = std::to_string(g.offset());
    rngs[k] = r;
  }
  ts["rngs"] = rngs;
  ts["extra"] = st.extra;
  Metadata meta = info.to_metadata();
  meta.emplace_back("train_state", ts.dump(-1));
  meta.insert(meta.end(), extra.begin(), extra.end());
  save_safetensors(path, tensors, meta);
}

Metadata load_checkpoint(const std::string& path, Module& m, optim::Optimizer& opt, TrainState& st,
                         bool* checksum_verified) {
  SafeTensors f = load_safetensors(path);
  if (checksum_verified) *checksum_verified = f.checksum_verified;
  auto where = [&] { return str("loading checkpoint '", path, "': "); };
  try {
    load_state_dict(m, f.tensors, {kOptPrefix});
  } catch (const Error& e) {
    throw Error(where() + e.what());
  }
  const std::string* tsj = f.meta("train_state");
  MINIMA_CHECK(tsj != nullptr, where(), "no train_state in the metadata (a weights-only file?)");
  // Everything of train_state is read before anything is changed, each error naming the file.
  std::string opt_type;
  int64_t opt_steps = 0;
  double opt_lr = 0;
  TrainState saved;
  try {
    Json ts = Json::parse(*tsj);
    const Json& o = ts.at("optimizer");
    opt_type = o.at("type").as_string();
    opt_steps = o.at("steps").as_int();
    opt_lr = o.at("lr").as_double();
    saved.epoch = ts.at("epoch").as_int();
    saved.step = ts.at("step").as_int();
    saved.extra = ts.contains("extra") ? ts.at("extra") : Json::object();
    for (const auto& [k, r] : ts.at("rngs").items()) {
      Generator g;
      g.set_state(parse_uint("train_state rngs." + k + ".seed", r.at("seed").as_string()),
                  parse_uint("train_state rngs." + k + ".offset", r.at("offset").as_string()));
      saved.rngs.emplace_back(k, g);
    }
  } catch (const Error& e) {
    throw Error(where() + "bad train_state metadata: " + e.what());
  }
  MINIMA_CHECK(opt_type == opt.type_name(), where(), "saved optimizer is ", opt_type, ", the run uses ",
               opt.type_name());

  // Optimizer state: every slot of every parameter must be present with the right shape.
  auto names = optimizer_param_names(m, opt);
  std::vector<std::string> problems;
  std::map<std::string, bool> used;
  auto state = opt.state();
  for (const auto& e : state) {
    std::string key = kOptPrefix + names[e.param] + "." + e.slot;
    used[key] = true;
    const Tensor* t = f.find(key);
    if (!t)
      problems.push_back(str("missing '", key, "'"));
    else if (t->shape() != e.tensor.shape() || t->dtype() != e.tensor.dtype())
      problems.push_back(str("'", key, "': ", shape_str(t->shape()), " ", dtype_name(t->dtype()), " in the file, ",
                             shape_str(e.tensor.shape()), " ", dtype_name(e.tensor.dtype()), " expected"));
  }
  for (const auto& [k, t] : f.tensors)
    if (k.rfind(kOptPrefix, 0) == 0 && !used.count(k)) problems.push_back(str("unexpected '", k, "'"));
  if (!problems.empty()) {
    std::string msg = where() + "optimizer state does not match the optimizer:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw Error(msg);
  }
  {
    NoGradGuard ng;
    for (const auto& e : state) {
      Tensor dst = e.tensor;
      dst.copy_(*f.find(kOptPrefix + names[e.param] + "." + e.slot));
    }
  }
  opt.set_steps(opt_steps);
  opt.set_lr(opt_lr);

  st.epoch = saved.epoch;
  st.step = saved.step;
  st.extra = saved.extra;
  for (const auto& [k, g] : saved.rngs) {
    if (Generator* mine = st.rng(k))
      *mine = g;
    else
      st.rngs.emplace_back(k, g);
  }
  return f.metadata;
}

}  // namespace minima::nn
