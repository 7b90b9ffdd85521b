// tests/nn/test_checkpoint.cpp: safetensors round trips (bitwise, every dtype), the file layout,
// strict loading with all mismatches reported, and a resumed training run that ends bit-for-bit
// where the uninterrupted run ends.
#include <dirent.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/json.h"
#include "core/ops.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "safetensors_bytes.h"

using namespace minima;
using namespace minima::nn;

namespace {
std::string tmp_path(const std::string& name) {
  return "/tmp/minima_test_ckpt_" + std::to_string(getpid()) + "_" + name;
}
// Raw bytes of a tensor (CPU copy), for bitwise comparison.
std::string bytes_of(const Tensor& t) {
  Tensor c = t.detach().cpu().contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), size_t(c.numel()) * c.element_size());
}
void check_same_state(const Module& a, const Module& b) {
  auto sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    CAPTURE(sa[i].first);
    CHECK(sa[i].first == sb[i].first);
    CHECK(sa[i].second.shape() == sb[i].second.shape());
    CHECK(bytes_of(sa[i].second) == bytes_of(sb[i].second));
  }
}
}  // namespace

TEST_CASE("safetensors: every dtype round-trips bitwise, with metadata, in the documented layout") {
  Generator g(4);
  Tensor f32 = randn({3, 5}, g);
  Tensor f64 = randn({2, 2, 2}, g, DType::f64);
  Tensor bf = randn({7}, g).to(DType::bf16);
  Tensor i64 = randint({4}, 1000000, g);
  Tensor u8 = randint({6}, 256, g).to(DType::u8);
  Tensor scalar = full({}, 42.0, DType::i64);
  Tensor strided = randn({4, 6}, g).t();  // non-contiguous: written in logical order
  NamedTensors ts{{"a.f32", f32}, {"b.f64", f64},       {"c.bf16", bf},        {"d.i64", i64},
                  {"e.u8", u8},   {"f.scalar", scalar}, {"g.strided", strided}};
  std::string path = tmp_path("dtypes.safetensors");
  save_safetensors(path, ts, {{"arch", "test"}, {"note", "quotes \" and \\ survive"}});
  SafeTensors back = load_safetensors(path);
  REQUIRE(back.tensors.size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    CAPTURE(ts[i].first);
    CHECK(back.tensors[i].first == ts[i].first);
    CHECK(back.tensors[i].second.dtype() == ts[i].second.dtype());
    CHECK(back.tensors[i].second.shape() == ts[i].second.shape());
    CHECK(bytes_of(back.tensors[i].second) == bytes_of(ts[i].second));
  }
  REQUIRE(back.meta("note") != nullptr);
  CHECK(*back.meta("note") == "quotes \" and \\ survive");

  // Layout: u64 little-endian header length, multiple of 8; JSON header; data follows.
  std::ifstream f(path, std::ios::binary);
  uint8_t len_bytes[8];
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  CHECK(n % 8 == 0);
  std::string h(n, '\0');
  f.read(h.data(), std::streamsize(n));
  Json header = Json::parse(h);
  CHECK(header.at("b.f64").at("dtype").as_string() == "F64");
  CHECK(header.at("c.bf16").at("dtype").as_string() == "BF16");
  CHECK(header.at("f.scalar").at("shape").size() == 0);
  CHECK(header.at("a.f32").at("data_offsets")[0].as_int() == 0);
  CHECK(header.at("a.f32").at("data_offsets")[1].as_int() == 60);
  CHECK(header.at("__metadata__").at("arch").as_string() == "test");
  f.seekg(0, std::ios::end);
  CHECK(int64_t(f.tellg()) == 8 + int64_t(n) + header.at("g.strided").at("data_offsets")[1].as_int());
  std::remove(path.c_str());
}

TEST_CASE("safetensors: save leaves no temporary file, corrupt files give clear errors") {
  std::string path = tmp_path("atomic.safetensors");
  save_safetensors(path, {{"x", ones({2})}});
  std::string dir = "/tmp", base = path.substr(5);
  DIR* d = opendir(dir.c_str());
  int leftovers = 0;
  while (dirent* e = readdir(d))
    if (std::string(e->d_name).rfind(base + ".tmp", 0) == 0) ++leftovers;
  closedir(d);
  CHECK(leftovers == 0);
  // Truncate the data section.
  std::string full;
  {
    std::ifstream f(path, std::ios::binary);
    full.assign(std::istreambuf_iterator<char>(f), {});
  }
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(full.data(), std::streamsize(full.size() - 3));
  }
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("truncated"), Error);
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write("\x10\0\0\0\0\0\0\0{not json}      ", 24);
  }
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("bad JSON header"), Error);
  std::remove(path.c_str());
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("cannot open"), Error);
  // Tensors must tile the data section: overlapping, gapped or trailing bytes and a repeated
  // name used to load silently (two names reading the same bytes, or the last entry winning).
  auto write_raw = [&](const std::string& header, size_t data_bytes) {
    std::string h = header;
    while (h.size() % 8) h += ' ';
    const uint64_t n = h.size();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(h.data(), std::streamsize(h.size()));
    f.write(std::string(data_bytes, '\0').data(), std::streamsize(data_bytes));
  };
  const std::string a = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  write_raw("{" + a + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("tensors 'a' and 'b' overlap"), Error);
  write_raw("{" + a + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12);
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("bytes 4 to 8 of the data section"), Error);
  write_raw("{" + a + "}", 8);
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("4 bytes after the last tensor ('a')"), Error);
  write_raw("{" + a + "," + a + "}", 4);
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("duplicate key \"a\""), Error);
  write_raw("{" + a + R"(,"z":{"dtype":"U8","shape":[0],"data_offsets":[4,4]}})", 4);  // empty tensors are fine
  CHECK(load_safetensors(path).tensors.size() == 2);
  std::remove(path.c_str());
  // A directory opens as a stream but reads nothing: it used to be reported as a bad JSON header.
  CHECK_THROWS_WITH_AS(load_safetensors("/tmp"), doctest::Contains("'/tmp' is not a regular file"), Error);
}

TEST_CASE("weights: save/load round trip bitwise, and loading reports every mismatch at once") {
  Generator g1(1), g2(2);
  auto a = make_model("smallcnn", {1, 8, 8}, 10, g1);
  auto b = make_model("smallcnn", {1, 8, 8}, 10, g2);
  {  // make the BN buffers non-trivial
    Tensor x = randn({2, 1, 8, 8}, g1);
    (*a)(x);
  }
  ModelInfo info{"smallcnn", {1, 8, 8}, 10, "fashion-mnist", {0.2860}, {0.3530}, 1};
  std::string path = tmp_path("weights.safetensors");
  save_weights(path, *a, info);
  Metadata meta = load_weights(path, *b);
  check_same_state(*a, *b);
  ModelInfo back = ModelInfo::from_metadata(meta);
  CHECK(back.arch == "smallcnn");
  CHECK(back.in_chw == Shape{1, 8, 8});
  CHECK(back.classes == 10);
  CHECK(back.mean == std::vector<double>{0.2860});
  CHECK(back.std == std::vector<double>{0.3530});
  a->eval();
  b->eval();
  Tensor x = randn({2, 1, 8, 8}, g1);
  CHECK(bytes_of((*a)(x)) == bytes_of((*b)(x)));

  // 100 classes: two shape mismatches (the last Linear's weight and bias) in one message.
  auto c = make_model("smallcnn", {1, 8, 8}, 100, g2);
  std::string msg;
  try {
    load_weights(path, *c);
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("2 mismatches") != std::string::npos);
  CHECK(msg.find("'classifier.3.weight': shape [100, 256] in the file") == std::string::npos);
  CHECK(msg.find("'classifier.3.weight': shape [10, 256] in the file, [100, 256] in the model") != std::string::npos);
  CHECK(msg.find("'classifier.3.bias': shape [10] in the file, [100] in the model") != std::string::npos);
  // A different architecture: missing and unexpected keys are both listed.
  auto m = make_model("mlp", {1, 8, 8}, 10, g2);
  try {
    load_weights(path, *m);
    FAIL("expected an error");
  } catch (const Error& e) {
    std::string s = e.what();
    CHECK(s.find("missing 'layers.0.weight'") != std::string::npos);
    CHECK(s.find("unexpected 'features.0.weight'") != std::string::npos);
  }
  // dtype mismatch
  NamedTensors sd = a->state_dict();
  for (auto& [k, t] : sd)
    if (k == "features.1.running_mean") t = t.to(DType::f64);
  save_safetensors(path, sd, info.to_metadata());
  CHECK_THROWS_WITH_AS(load_weights(path, *b), doctest::Contains("'features.1.running_mean': dtype float64"), Error);
  std::remove(path.c_str());
}

namespace {
// A small net with every kind of state: conv/linear weights, BN buffers, dropout randomness.
std::shared_ptr<Sequential> tiny_net(Generator& g, const std::shared_ptr<Generator>& drop) {
  Conv2dOptions same;
  same.padding = 1;
  return std::make_shared<Sequential>(
      std::vector<std::shared_ptr<Module>>{std::make_shared<Conv2d>(1, 4, 3, g, same), std::make_shared<BatchNorm2d>(4),
                                           std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
                                           std::make_shared<Flatten>(), std::make_shared<Dropout>(0.3, drop),
                                           std::make_shared<Linear>(4 * 4 * 4, 5, g)});
}

// Runs steps [from, to) of a fixed training recipe; the data comes from `data`.
void train_steps(Module& m, optim::Optimizer& opt, Generator& data, int64_t from, int64_t to) {
  for (int64_t s = from; s < to; ++s) {
    Tensor x = randn({6, 1, 8, 8}, data);
    Tensor y = randint({6}, 5, data);
    opt.zero_grad();
    cross_entropy(m(x), y).backward();
    opt.step();
  }
}

void resume_equals_uninterrupted(bool adam) {
  CAPTURE(adam);
  auto make_opt = [&](Module& m) -> std::unique_ptr<optim::Optimizer> {
    if (adam) {
      optim::AdamOptions o;
      o.lr = 1e-2;
      o.weight_decay = 1e-3;
      return std::make_unique<optim::Adam>(m.parameters(), o);
    }
    optim::SGDOptions o;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.weight_decay = 5e-4;
    o.nesterov = true;
    return std::make_unique<optim::SGD>(m.parameters(), o);
  };
  const int64_t total = 8, cut = 3;
  // Uninterrupted.
  Generator init(7);
  auto drop = std::make_shared<Generator>(99);
  auto net = tiny_net(init, drop);
  auto opt = make_opt(*net);
  Generator data(123);
  train_steps(*net, *opt, data, 0, total);

  // Interrupted at `cut`: save, then rebuild everything from other seeds and load.
  Generator init2(7);
  auto drop2 = std::make_shared<Generator>(99);
  auto net2 = tiny_net(init2, drop2);
  auto opt2 = make_opt(*net2);
  Generator data2(123);
  train_steps(*net2, *opt2, data2, 0, cut);
  TrainState st;
  st.epoch = 1;
  st.step = cut;
  st.rngs = {{"data", data2}, {"dropout", *drop2}};
  st.extra["best"] = 0.5;
  std::string path = tmp_path(adam ? "resume_adam.safetensors" : "resume_sgd.safetensors");
  save_checkpoint(path, *net2, *opt2, st, ModelInfo{"tiny", {1, 8, 8}, 5, "random", {0.0}, {1.0}, 7});

  Generator init3(1000);
  auto drop3 = std::make_shared<Generator>(1000);
  auto net3 = tiny_net(init3, drop3);
  auto opt3 = make_opt(*net3);
  TrainState st3;
  st3.rngs = {{"data", Generator(0)}, {"dropout", Generator(0)}};
  load_checkpoint(path, *net3, *opt3, st3);
  CHECK(st3.epoch == 1);
  CHECK(st3.step == cut);
  CHECK(st3.extra.at("best").as_double() == 0.5);
  CHECK(opt3->steps() == cut);
  *drop3 = *st3.rng("dropout");
  Generator data3 = *st3.rng("data");
  train_steps(*net3, *opt3, data3, cut, total);

  check_same_state(*net, *net3);
  auto sa = opt->state(), sb = opt3->state();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) CHECK(bytes_of(sa[i].tensor) == bytes_of(sb[i].tensor));

  // A checkpoint of the other optimizer type is refused with a clear message.
  optim::SGD other(net3->parameters(), optim::SGDOptions{});
  if (adam)
    CHECK_THROWS_WITH_AS(load_checkpoint(path, *net3, other, st3), doctest::Contains("saved optimizer is adam"), Error);
  // The weights part of a training checkpoint loads on its own (optimizer entries ignored).
  CHECK_NOTHROW(load_weights(path, *net3));
  std::remove(path.c_str());
}
}  // namespace

TEST_CASE("a resumed run ends bit-for-bit where the uninterrupted run ends (SGD, Nesterov, weight decay)") {
  resume_equals_uninterrupted(false);
}
TEST_CASE("a resumed run ends bit-for-bit where the uninterrupted run ends (Adam)") {
  resume_equals_uninterrupted(true);
}

namespace {
// A safetensors file with the given header text and `data_bytes` zero bytes of data.
void write_raw_safetensors(const std::string& path, std::string header, size_t data_bytes) {
  while (header.size() % 8) header += ' ';
  uint64_t n = header.size();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(header.data(), std::streamsize(header.size()));
  std::string data(data_bytes, '\0');
  f.write(data.data(), std::streamsize(data.size()));
}
}  // namespace

TEST_CASE("safetensors: a malformed entry names the tensor and the file, and sizes must be whole numbers") {
  std::string path = tmp_path("entries.safetensors");
  auto rejects = [&](const std::string& entry, size_t data_bytes, const std::string& expected) {
    write_raw_safetensors(path, "{\"w\": " + entry + "}", data_bytes);
    CAPTURE(entry);
    CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("tensor 'w'"), Error);
    CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains(path.c_str()), Error);
    CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains(expected.c_str()), Error);
  };
  // 783.6 used to be rounded to 784, whose 3136 bytes the data section holds.
  rejects(R"({"dtype": "F32", "shape": [783.6], "data_offsets": [0, 3136]})", 3136, "non-negative integers");
  rejects(R"({"dtype": "F32", "shape": [2e2], "data_offsets": [0, 800]})", 800, "non-negative integers");
  rejects(R"({"dtype": "F32", "shape": ["4"], "data_offsets": [0, 16]})", 16, "non-negative integers");
  rejects(R"({"dtype": "F32", "shape": 4, "data_offsets": [0, 16]})", 16, "shape must be an array");
  rejects(R"({"dtype": "F32", "shape": [4], "data_offsets": ["0", "16"]})", 16, "data_offsets must be");
  rejects(R"({"dtype": "F32", "shape": [4], "data_offsets": 16})", 16, "data_offsets must be");
  rejects(R"({"dtype": 5, "shape": [4], "data_offsets": [0, 16]})", 16, "unsupported dtype");
  rejects(R"({"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]})", 16, "too large");
  rejects(R"({"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 16]})", 16, "too large");
  write_raw_safetensors(path, R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})", 16);
  CHECK(load_safetensors(path).tensors.at(0).second.shape() == Shape{2, 2});
  std::remove(path.c_str());
}

TEST_CASE("checkpoint metadata that does not parse names the entry and what it should be") {
  ModelInfo good{"mlp", {1, 28, 28}, 10, "fashion-mnist", {0.5}, {0.25}, 3};
  auto with = [&](const std::string& key, const std::string& value) {
    Metadata m = good.to_metadata();
    for (auto& kv : m)
      if (kv.first == key) kv.second = value;
    return m;
  };
  CHECK(ModelInfo::from_metadata(good.to_metadata()).classes == 10);
  auto rejects = [&](const std::string& key, const std::string& value, const std::string& expected) {
    CAPTURE(key);
    CAPTURE(value);
    CHECK_THROWS_WITH_AS(ModelInfo::from_metadata(with(key, value)), doctest::Contains(("'" + key + "'").c_str()),
                         Error);
    CHECK_THROWS_WITH_AS(ModelInfo::from_metadata(with(key, value)), doctest::Contains(expected.c_str()), Error);
  };
  rejects("classes", "abc", "should be an integer, got 'abc'");
  rejects("classes", "10x", "should be an integer");
  rejects("classes", "99999999999999999999", "should be an integer");
  rejects("in_shape", "1xax28", "should be an integer");
  rejects("seed", "-1", "should be an unsigned integer");
  rejects("seed", "abc", "should be an unsigned integer");
  rejects("mean", "0.5,abc", "finite numbers");
  rejects("std", "nan", "finite numbers");
  rejects("std", "inf", "finite numbers");

  // A checkpoint's train_state: the error names the file and the entry.
  Generator g(1);
  auto net = std::make_shared<Linear>(3, 2, g);
  optim::SGD opt(net->parameters(), {0.1, 0.9, 0.0, 0.0, false});
  TrainState st;
  st.epoch = 2;
  st.rngs.emplace_back("order", Generator(5));
  std::string path = tmp_path("train_state.safetensors");
  save_checkpoint(path, *net, opt, st, good);
  SafeTensors f = load_safetensors(path);
  for (auto& kv : f.metadata)
    if (kv.first == "train_state") {
      Json ts = Json::parse(kv.second);
      ts["rngs"]["order"]["seed"] = "12abc";
      kv.second = ts.dump(-1);
    }
  save_safetensors(path, f.tensors, f.metadata);
  TrainState back;
  CHECK_THROWS_WITH_AS(load_checkpoint(path, *net, opt, back), doctest::Contains(path.c_str()), Error);
  CHECK_THROWS_WITH_AS(load_checkpoint(path, *net, opt, back), doctest::Contains("rngs.order.seed"), Error);
  CHECK(back.epoch == 0);  // nothing was taken from the bad file
  std::remove(path.c_str());
}

TEST_CASE("safetensors: a checksum written with the file finds bytes changed after it, and names the tensors") {
  Generator g(11);
  NamedTensors ts{{"conv.weight", randn({4, 3, 3, 3}, g)},
                  {"conv.bias", randn({4}, g)},
                  {"bn.num_batches_tracked", full({}, 7.0, DType::i64)},
                  {"fc.weight", randn({10, 4}, g).to(DType::bf16)}};
  const std::string odd = "quotes \" \\ tab\t newline\n control\x01 utf-8 \xc3\xa9\xe2\x82\xac";
  const Metadata meta{{"arch", "test"}, {"note", odd}, {"step", "1234"}};
  const std::string path = tmp_path("checksum.safetensors");
  save_safetensors(path, ts, meta);

  // The entry is in the file, verified on load, and not handed back as metadata.
  const std::string good = read_file(path);
  size_t data_start = 0;
  Json header = testutil::safetensors_header(good, data_start);
  REQUIRE(header.at("__metadata__").contains(kChecksumKey));
  Json sum = Json::parse(header.at("__metadata__").at(kChecksumKey).as_string());
  CHECK(sum.at("tensors").size() == ts.size());
  SafeTensors back = load_safetensors(path);
  CHECK(back.metadata == meta);
  CHECK(back.meta(kChecksumKey) == nullptr);
  // Saved again as read (the way the tests edit a file), it gets a fresh checksum and loads.
  save_safetensors(path, back.tensors, back.metadata);
  CHECK(read_file(path) == good);
  CHECK_THROWS_WITH_AS(save_safetensors(path, ts, {{kChecksumKey, "0"}}), doctest::Contains("reserved"), Error);

  // One bit flipped in each of two tensors, anywhere in them: both are named.
  Generator pick(12);
  for (int trial = 0; trial < 8; ++trial) {
    std::string bad = good;
    for (const char* name : {"conv.weight", "fc.weight"}) {
      const Json& offs = header.at(name).at("data_offsets");
      const int64_t b = offs[0].as_int(), len = offs[1].as_int() - b;
      const auto at = int64_t(randint({}, len, pick).item());
      const int bit = int(randint({}, 8, pick).item());
      bad[data_start + size_t(b + at)] = char(bad[data_start + size_t(b + at)] ^ (1 << bit));
    }
    write_file_atomic(path, bad);
    CAPTURE(trial);
    CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("2 of 4 tensors do not match"), ChecksumError);
    CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("'conv.weight', 'fc.weight'"), Error);
    CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains(path.c_str()), Error);
  }
  // A metadata digit changed in place (the file's layout unchanged): the header no longer matches.
  std::string bad = good;
  const size_t digit = bad.find("1234");
  REQUIRE(digit < data_start);
  bad[digit] = '9';
  write_file_atomic(path, bad);
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("its header (tensor names"), ChecksumError);
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("entry is removed"), Error);
  // The checksum entry itself damaged.
  bad = good;
  const size_t entry = bad.find("\\\"header\\\"");
  REQUIRE(entry < data_start);
  bad[entry + 2] = 'H';
  write_file_atomic(path, bad);
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("metadata entry is damaged"), ChecksumError);
  // With the entry removed by hand (as a user who edits the file on purpose would), the file loads.
  write_file_atomic(path, testutil::without_checksum(good));
  CHECK(load_safetensors(path).metadata == meta);
  std::remove(path.c_str());
}

TEST_CASE("a checkpoint whose weights were changed on disk is refused, naming the tensor") {
  Generator g(13);
  auto net = std::make_shared<Linear>(5, 3, g);
  optim::SGD opt(net->parameters(), {0.1, 0.9, 0.0, 0.0, false});
  TrainState st;
  ModelInfo info{"mlp", {1, 1, 5}, 3, "synthetic", {0.0}, {1.0}, 13};
  const std::string path = tmp_path("changed.safetensors");
  save_checkpoint(path, *net, opt, st, info);
  std::string bytes = read_file(path);
  size_t data_start = 0;
  Json header = testutil::safetensors_header(bytes, data_start);
  // The weight's first value made slightly larger: still finite, so only the checksum can tell.
  const auto at = data_start + size_t(header.at("weight").at("data_offsets")[0].as_int());
  bytes[at] = char(bytes[at] ^ 1);
  write_file_atomic(path, bytes);
  TrainState back;
  CHECK_THROWS_WITH_AS(load_checkpoint(path, *net, opt, back), doctest::Contains("('weight')"), Error);
  auto other = std::make_shared<Linear>(5, 3, g);
  CHECK_THROWS_WITH_AS(load_weights(path, *other), doctest::Contains("damaged or changed"), Error);
  std::remove(path.c_str());
}
