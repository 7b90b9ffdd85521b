// nn/checkpoint.cpp: see checkpoint.h.
#include "nn/checkpoint.h"

#include <map>
#include <sstream>

namespace minima::nn {

namespace {
const char* kOptPrefix = "optimizer.";

std::string join_doubles(const std::vector<double>& v) {
  std::ostringstream s;
  s.precision(17);
  for (size_t i = 0; i < v.size(); ++i) s << (i ? "," : "") << v[i];
  return s.str();
}
std::vector<double> split_doubles(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::stod(item));
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
  return {{"arch", arch},
          {"in_shape", in},
          {"classes", std::to_string(classes)},
          {"dataset", dataset},
          {"mean", join_doubles(mean)},
          {"std", join_doubles(std)},
          {"seed", std::to_string(seed)},
          {"format", "minima"}};
}

ModelInfo ModelInfo::from_metadata(const Metadata& m) {
  ModelInfo info;
  info.arch = need(m, "arch");
  std::stringstream ss(need(m, "in_shape"));
  std::string item;
  while (std::getline(ss, item, 'x')) info.in_chw.push_back(std::stoll(item));
  MINIMA_CHECK(info.in_chw.size() == 3, "checkpoint metadata: in_shape '", need(m, "in_shape"), "' is not CxHxW");
  info.classes = std::stoll(need(m, "classes"));
  for (const auto& [k, v] : m) {
    if (k == "dataset") info.dataset = v;
    if (k == "mean") info.mean = split_doubles(v);
    if (k == "std") info.std = split_doubles(v);
    if (k == "seed") info.seed = std::stoull(v);
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

Metadata load_checkpoint(const std::string& path, Module& m, optim::Optimizer& opt, TrainState& st) {
  SafeTensors f = load_safetensors(path);
  auto where = [&] { return str("loading checkpoint '", path, "': "); };
  try {
    load_state_dict(m, f.tensors, {kOptPrefix});
  } catch (const Error& e) {
    throw Error(where() + e.what());
  }
  const std::string* tsj = f.meta("train_state");
  MINIMA_CHECK(tsj != nullptr, where(), "no train_state in the metadata (a weights-only file?)");
  Json ts = Json::parse(*tsj);
  const Json& o = ts.at("optimizer");
  MINIMA_CHECK(o.at("type").as_string() == opt.type_name(), where(), "saved optimizer is ", o.at("type").as_string(),
               ", the run uses ", opt.type_name());

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
  opt.set_steps(o.at("steps").as_int());
  opt.set_lr(o.at("lr").as_double());

  st.epoch = ts.at("epoch").as_int();
  st.step = ts.at("step").as_int();
  st.extra = ts.contains("extra") ? ts.at("extra") : Json::object();
  for (const auto& [k, r] : ts.at("rngs").items()) {
    uint64_t seed = std::stoull(r.at("seed").as_string()), off = std::stoull(r.at("offset").as_string());
    if (Generator* g = st.rng(k))
      g->set_state(seed, off);
    else {
      Generator g2;
      g2.set_state(seed, off);
      st.rngs.emplace_back(k, g2);
    }
  }
  return f.metadata;
}

}  // namespace minima::nn
