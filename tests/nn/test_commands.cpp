// tests/nn/test_commands.cpp: the `minima models`, `eval`, `inspect` and `compare` commands, run as a user runs
// them (the built binary), checked against the library computing the same figures in-process.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

// The data headers come first: data/augment.h calls sqrt unqualified, which core/ops.h's
// minima::sqrt(Tensor) would hide.
#include "core/json.h"
#include "core/ops.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "fashion_mnist.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "nn/safetensors.h"
#include "run_command.h"
#include "safetensors_bytes.h"
#include "temp_dir.h"

using namespace minima;

namespace {
std::string run(const std::string& args, int& rc) {
  const testutil::Run r = testutil::run_command(std::string(MINIMA_BINARY) + " " + args);
  rc = r.rc;
  return r.output;
}
}  // namespace

TEST_CASE("minima models prints one 'name params' line per architecture") {
  int rc = 0;
  std::string out = run("models --in 1x28x28 --classes 10", rc);
  INFO(out);
  REQUIRE(rc == 0);
  std::istringstream lines(out);
  std::vector<std::string> names;
  for (std::string name; lines >> name;) {
    int64_t params = 0;
    bool read = bool(lines >> params);
    REQUIRE(read);
    Generator g(0);
    CHECK(params == nn::make_model(name, {1, 28, 28}, 10, g)->num_parameters());
    names.push_back(name);
  }
  CHECK(names == nn::model_names());
  std::string bad = run("models --arch alexnet", rc);
  CHECK(rc != 0);
  CHECK(bad.find("unknown architecture 'alexnet'") != std::string::npos);

  // 1x1 images are too small for densenet40's pooling: it used to be listed, and to fail only at
  // the first training step, after `train` had claimed its --out. The listing names it and goes on.
  out = run("models --in 1x1x1", rc);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("note: densenet40 cannot take inputs of shape [1, 1, 1]: avg_pool2d: input of shape [1, 48, 1, 1] "
                 "is too small for kernel 2") != std::string::npos);
  CHECK(out.find("note: smallcnn: input [1, 1, 1] is too small") != std::string::npos);
  Generator g1(0);
  const int64_t mlp_params = nn::make_model("mlp", {1, 1, 1}, 10, g1)->num_parameters();
  CHECK(out.rfind("mlp " + std::to_string(mlp_params) + "\n", 0) == 0);  // the others are still listed
  CHECK(out.find("densenet40 1") == std::string::npos);
  out = run("models --in 1x1x1 --arch densenet40", rc);
  CHECK(rc != 0);
  CHECK(out.find("error: densenet40 cannot take inputs of shape [1, 1, 1]") != std::string::npos);
  out = run("models --in 1x1x1 --arch smallcnn", rc);
  CHECK(rc != 0);
  CHECK(out.find("error: smallcnn: input [1, 1, 1] is too small") != std::string::npos);
}

TEST_CASE("minima eval reports the loss and accuracy the library computes") {
  const data::Splits* s = testutil::fashion_mnist_or_skip();
  if (!s) return;
  Generator g(3);
  auto model = nn::make_model("mlp", {1, 28, 28}, 10, g);
  nn::ModelInfo info{"mlp", {1, 28, 28}, 10, "fashion-mnist", s->train.mean, s->train.std, 3};
  std::string path = "/tmp/minima_test_eval_" + std::to_string(getpid()) + ".safetensors";
  nn::save_weights(path, *model, info);

  // In-process reference: the same weights on the test split.
  model->eval();
  NoGradGuard ng;
  data::Loader loader(s->test, 1000, false, 0, {}, false);
  loader.start_epoch(0);
  double loss = 0;
  int64_t correct = 0, seen = 0;
  Tensor x, y;
  while (loader.next(x, y)) {
    Tensor logits = (*model)(x);
    loss += cross_entropy(logits, y).item() * double(x.size(0));
    correct += count_correct(logits, y);
    seen += x.size(0);
  }

  int rc = 0;
  std::string out = run("eval --weights " + path + " --device cpu --batch 700", rc);
  INFO(out);
  REQUIRE(rc == 0);
  Json r = Json::parse(out.substr(out.find('{')));
  CHECK(r.at("samples").as_int() == seen);
  CHECK(r.at("samples").as_int() == 10000);
  CHECK(r.at("dataset").as_string() == "fashion-mnist");
  CHECK(r.at("loss").as_double() == doctest::Approx(loss / double(seen)).epsilon(1e-5));
  CHECK(r.at("accuracy").as_double() == doctest::Approx(100.0 * double(correct) / double(seen)));
  std::string missing = run("eval --weights /nonexistent.safetensors", rc);
  CHECK(rc != 0);
  CHECK(missing.find("cannot open") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("every command that can run on a GPU takes the CUDA backend's flags") {
  for (const char* cmd : {"train", "adversarial-init", "eval", "memorize", "bench train"}) {
    INFO(cmd);
    int rc = 0;
    std::string help = run(std::string(cmd) + " --help", rc);
    CHECK(rc == 0);
    for (const char* flag : {"--gemm STR", "--conv STR", "--bn STR", "--tf32", "--deterministic"})
      CHECK_MESSAGE(help.find(flag) != std::string::npos, flag);
    std::string bad = run(std::string(cmd) + " --gemm fastest --out /nonexistent/never-written", rc);
    CHECK(rc != 0);
    CHECK(bad.find("error: unknown gemm implementation 'fastest' (expected native, cublas or auto)") !=
          std::string::npos);
    bad = run(std::string(cmd) + " --conv winograd --out /nonexistent/never-written", rc);
    CHECK(rc != 0);
    CHECK(bad.find("'winograd'") != std::string::npos);
    bad = run(std::string(cmd) + " --bn fused --out /nonexistent/never-written", rc);
    CHECK(rc != 0);
    CHECK(bad.find("error: unknown batch_norm implementation 'fused' (expected passes or persistent)") !=
          std::string::npos);
  }
}

TEST_CASE("minima models and eval refuse class counts and shapes too large to build") {
  int rc = 0;
  for (const char* classes : {"4611686018427387904", "9223372036854775807", "100000000"}) {
    std::string out = run(std::string("models --arch mlp --classes ") + classes, rc);
    INFO(out);
    CHECK(rc != 0);
    CHECK(out.find("error: make_model: class count must be in [1, 16777216]") != std::string::npos);
  }
  std::string out = run("models --arch mlp --in 1x4294967296x4294967296", rc);
  CHECK(rc != 0);
  CHECK(out.find("too large") != std::string::npos);
  // A weights file whose metadata claims that many classes.
  Generator g(3);
  auto model = nn::make_model("mlp", {1, 28, 28}, 10, g);
  std::string path = "/tmp/minima_test_eval_classes_" + std::to_string(getpid()) + ".safetensors";
  nn::save_weights(path, *model, {"mlp", {1, 28, 28}, 10, "fashion-mnist", {0.5}, {0.25}, 3});
  nn::SafeTensors f = nn::load_safetensors(path);
  for (auto& kv : f.metadata)
    if (kv.first == "classes") kv.second = "4611686018427387904";
  nn::save_safetensors(path, f.tensors, f.metadata);
  out = run("eval --device cpu --weights " + path, rc);
  INFO(out);
  CHECK(rc != 0);
  CHECK(out.find("claims 4611686018427387904 classes but stores only 669706 values") != std::string::npos);
  for (auto& kv : f.metadata)
    if (kv.first == "classes") kv.second = "ten";
  nn::save_safetensors(path, f.tensors, f.metadata);
  out = run("eval --device cpu --weights " + path, rc);
  CHECK(rc != 0);
  CHECK(out.find("error: eval: " + path + ": metadata entry 'classes' should be an integer, got 'ten'") !=
        std::string::npos);
  // An input shape that disagrees with the data is refused before the network is built (an MLP
  // on 1x20000x20000 inputs would need 800 GB for its first layer).
  if (testutil::fashion_mnist_or_skip("the input-shape check")) {
    for (auto& kv : f.metadata) {
      if (kv.first == "classes") kv.second = "10";
      if (kv.first == "in_shape") kv.second = "1x20000x20000";
    }
    nn::save_safetensors(path, f.tensors, f.metadata);
    out = run("eval --device cpu --weights " + path, rc);
    INFO(out);
    CHECK(rc != 0);
    CHECK(out.find("images are 1x28x28 but " + path + " was trained on [1, 20000, 20000]") != std::string::npos);
    // A class count within the bound above but not the file's is refused before the network is
    // built: 100,000 classes would make the last layer 205 MB for a file of 2.7 MB.
    for (const auto& [classes, values] :
         {std::pair<std::string, std::string>{"100000", "51964576"}, {"11", "670219"}}) {
      for (auto& kv : f.metadata) {
        if (kv.first == "classes") kv.second = classes;
        if (kv.first == "in_shape") kv.second = "1x28x28";
      }
      nn::save_safetensors(path, f.tensors, f.metadata);
      out = run("eval --device cpu --weights " + path, rc);
      INFO(out);
      CHECK(rc != 0);
      CHECK(out.find("error: eval: " + path + " stores 669706 values, but a mlp for [1, 28, 28] inputs with " +
                     classes + " classes has " + values) != std::string::npos);
    }
  }
  std::remove(path.c_str());
}

TEST_CASE("minima eval refuses bad normalization constants and weights that give no finite loss") {
  if (!testutil::fashion_mnist_or_skip()) return;
  Generator g(3);
  auto model = nn::make_model("mlp", {1, 28, 28}, 10, g);
  std::string path = "/tmp/minima_test_eval_norm_" + std::to_string(getpid()) + ".safetensors";
  auto rejects = [&](const std::vector<double>& mean, const std::vector<double>& std, const std::string& expected) {
    nn::save_weights(path, *model, {"mlp", {1, 28, 28}, 10, "fashion-mnist", mean, std, 3});
    int rc = 0;
    std::string out = run("eval --device cpu --batch 5000 --weights " + path, rc);
    INFO(out);
    CHECK(rc != 0);
    CHECK(out.find("error: ") != std::string::npos);
    CHECK(out.find(expected) != std::string::npos);
  };
  rejects({0.3}, {0.0}, "normalization std of 0");
  rejects({0.3}, {-0.35}, "normalization std of -0.35");
  rejects({0.3, 0.3}, {0.35, 0.35}, "expected one per channel (1)");
  rejects({0.3}, {NAN}, "metadata entry 'std' should be comma-separated finite numbers");
  rejects({INFINITY}, {0.35}, "metadata entry 'mean' should be comma-separated finite numbers");
  {
    NoGradGuard ng;
    for (auto& [name, p] : model->named_parameters()) p.fill_(NAN);
  }
  rejects({0.3}, {0.35}, "its weights (or normalization constants) are not finite");
  std::remove(path.c_str());
}

TEST_CASE("minima train refuses a batch of one sample for batch norm, and an --out that holds a run") {
  if (!testutil::fashion_mnist_or_skip()) return;
  const std::string dir = "/tmp/minima_test_train_" + std::to_string(getpid());
  int rc = 0;
  // 129 images in batches of 128 end each epoch with one image, which batch norm cannot use.
  std::string out = run("train --arch mlp-bn --subset 129 --batch 128 --epochs 1 --out " + dir + "/bn", rc);
  INFO(out);
  CHECK(rc != 0);
  CHECK(out.find("error: 129 training samples in batches of 128 make a batch of one sample, on which mlp-bn's batch "
                 "norm cannot train; change --subset or --batch") != std::string::npos);
  CHECK(access((dir + "/bn/config.json").c_str(), F_OK) != 0);
  // Without batch norm the same split trains; a second run into its --out is refused.
  out = run("train --arch mlp --subset 129 --batch 128 --epochs 1 --threads 1 --out " + dir + "/mlp", rc);
  CHECK(rc == 0);
  const std::string summary = read_file(dir + "/mlp/summary.json");
  out = run("train --arch mlp --subset 129 --batch 128 --epochs 1 --lr 0.2 --out " + dir + "/mlp", rc);
  CHECK(rc != 0);
  CHECK(out.find("already holds a run") != std::string::npos);
  CHECK(read_file(dir + "/mlp/summary.json") == summary);
  CHECK(std::system(("rm -rf " + dir).c_str()) == 0);
}

TEST_CASE("minima train refuses --init weights that are not finite, and stops when an update leaves them so") {
  if (!testutil::fashion_mnist_or_skip()) return;
  testutil::TempDir tmp("train_diverge");
  const std::string& dir = tmp.path();
  int rc = 0;
  // One step of lr 1e308 gives infinite weights: the training loss, summed before each update, is
  // finite, and only the test loss after the epoch shows it. The run used to end with exit 0.
  std::string out = run("train --arch mlp --subset 64 --epochs 1 --lr 1e308 --out " + dir + "/huge", rc);
  INFO(out);
  CHECK(rc != 0);
  CHECK(out.find("error: training diverged at epoch 1 (training loss 2.") != std::string::npos);
  CHECK(out.find(", test loss nan); try a smaller --lr") != std::string::npos);
  CHECK(access((dir + "/huge/final.safetensors").c_str(), F_OK) != 0);
  // A weight decay with lr x wd past 2 (1 + momentum) makes the weights grow whatever the loss
  // does: the message names both flags instead of the learning rate alone.
  out = run("train --arch mlp --subset 64 --epochs 2 --momentum 0.5 --weight-decay 1e20 --out " + dir + "/decay", rc);
  INFO(out);
  CHECK(rc != 0);
  CHECK(out.find("); --lr x --weight-decay is 1e+19, at least the 3 past which the weight decay alone makes the "
                 "weights grow (momentum 0.5); lower either") != std::string::npos);
  out = run("train --arch mlp --subset 64 --epochs 2 --momentum 0.5 --nesterov --weight-decay 1e20 --out " + dir +
                "/nesterov",
            rc);
  INFO(out);
  CHECK(rc != 0);
  CHECK(out.find("at least the 1.5 past which the weight decay alone makes the weights grow (momentum 0.5, "
                 "Nesterov)") != std::string::npos);

  Generator g(5);
  auto model = nn::make_model("mlp", {1, 28, 28}, 10, g);
  {
    NoGradGuard ng;
    model->named_parameters()[2].second.fill_(NAN);
  }
  const std::string path = dir + "/nan.safetensors";
  nn::save_weights(path, *model, {"mlp", {1, 28, 28}, 10, "fashion-mnist", {0.3}, {0.35}, 5});
  out = run("train --arch mlp --subset 64 --epochs 1 --init " + path + " --out " + dir + "/nan", rc);
  INFO(out);
  CHECK(rc != 0);
  CHECK(out.find("error: --init " + path + ": " + model->named_parameters()[2].first +
                 " holds values that are not finite") != std::string::npos);
  CHECK(access((dir + "/nan/config.json").c_str(), F_OK) != 0);  // refused before --out was claimed
  // A resume adds itself to config.json's "resumes": a damaged list is named, not a bare JSON error.
  out = run("train --arch mlp --subset 64 --epochs 2 --halt-after 1 --checkpoint-every 0 --out " + dir + "/halted", rc);
  REQUIRE(rc != 0);
  Json cfg = Json::parse(read_file(dir + "/halted/config.json"));
  cfg["resumes"] = Json(5);
  write_file_atomic(dir + "/halted/config.json", cfg.dump());
  out = run("train --arch mlp --subset 64 --epochs 2 --checkpoint-every 0 --resume --out " + dir + "/halted", rc);
  CHECK(rc != 0);
  CHECK(out.find("error: " + dir + "/halted/config.json is damaged: expected an object whose \"resumes\" is a list") !=
        std::string::npos);
  // Used to be cast to an int (4294967297 -> 1 thread) and run, or to exhaust OpenMP's memory.
  out = run("train --arch mlp --subset 64 --epochs 1 --threads 4294967297 --out " + dir + "/threads", rc);
  CHECK(rc != 0);
  CHECK(out.find("error: --threads must be in [0, 1024], got 4294967297") != std::string::npos);
}

TEST_CASE(
    "minima train --resume refuses a checkpoint whose weights are not finite, as --init does, or changed on disk") {
  if (!testutil::fashion_mnist_or_skip()) return;
  testutil::TempDir tmp("train_resume_nan");
  const std::string cfg = "train --arch mlp --subset 64 --epochs 2 --checkpoint-every 0 --out " + tmp.path() + "/run";
  int rc = 0;
  std::string out = run(cfg + " --halt-after 1", rc);
  REQUIRE(rc != 0);
  const std::string ckpt = tmp.path() + "/run/checkpoint.safetensors";
  nn::SafeTensors f = nn::load_safetensors(ckpt);
  REQUIRE(!f.tensors.empty());
  {
    NoGradGuard ng;
    f.tensors[0].second = f.tensors[0].second.clone();
    f.tensors[0].second.fill_(NAN);
  }
  nn::save_safetensors(ckpt, f.tensors, f.metadata);
  // It used to be loaded, and the run to end "diverged" an epoch later.
  out = run(cfg + " --resume", rc);
  INFO(out);
  CHECK(rc != 0);
  CHECK(out.find("error: --resume: " + ckpt + ": " + f.tensors[0].first +
                 " holds values that are not finite; remove the checkpoint to train that run from its start") !=
        std::string::npos);
  CHECK(access((tmp.path() + "/run/summary.json").c_str(), F_OK) != 0);

  // Changed in place on the disk, the weights still finite: the checksum written with the file
  // refuses it and names the tensor (it used to be resumed from).
  const std::string cfg2 = "train --arch mlp --subset 64 --epochs 2 --checkpoint-every 0 --out " + tmp.path() + "/run2";
  out = run(cfg2 + " --halt-after 1", rc);
  REQUIRE(rc != 0);
  const std::string ckpt2 = tmp.path() + "/run2/checkpoint.safetensors";
  const std::string first = nn::load_safetensors(ckpt2).tensors.at(0).first;
  {
    std::fstream f(ckpt2, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t n = 0;
    f.read(reinterpret_cast<char*>(&n), 8);
    f.seekg(std::streamoff(8 + n));  // the first tensor's first byte
    char c = 0;
    f.read(&c, 1);
    c = char(c ^ 1);  // the lowest mantissa bit of a float: finite before and after
    f.seekp(std::streamoff(8 + n));
    f.write(&c, 1);
  }
  out = run(cfg2 + " --resume", rc);
  INFO(out);
  CHECK(rc != 0);
  CHECK(out.find("error: --resume: load_safetensors: '" + ckpt2 + "': 1 of ") != std::string::npos);
  CHECK(out.find("; remove the checkpoint to train that run from its start") != std::string::npos);
  CHECK(out.find("do not match the checksums written with them ('" + first + "')") != std::string::npos);
  CHECK(access((tmp.path() + "/run2/summary.json").c_str(), F_OK) != 0);
}

TEST_CASE("minima train --resume warns about a checkpoint without a checksum, and resumes it to the same weights") {
  if (!testutil::fashion_mnist_or_skip()) return;
  testutil::TempDir tmp("train_resume_unchecked");
  const std::string flags = "train --arch mlp --subset 64 --epochs 2 --checkpoint-every 0 --out ";
  int rc = 0;
  std::string out = run(flags + tmp.path() + "/whole", rc);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("warning") == std::string::npos);
  out = run(flags + tmp.path() + "/killed --halt-after 1", rc);
  REQUIRE(rc != 0);
  // As a checkpoint written before minima saved checksums: its bytes cannot be checked, so the
  // resume says so, and goes on (it used to go on without a word).
  const std::string ckpt = tmp.path() + "/killed/checkpoint.safetensors";
  write_file_atomic(ckpt, testutil::without_checksum(read_file(ckpt)));
  REQUIRE(!nn::load_safetensors(ckpt).checksum_verified);
  out = run(flags + tmp.path() + "/killed --resume", rc);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("warning: --resume: " + ckpt + " carries no checksum (written by an older minima, or edited)") !=
        std::string::npos);
  CHECK(out.find("resuming after epoch 1") != std::string::npos);
  CHECK(read_file(tmp.path() + "/killed/final.safetensors") == read_file(tmp.path() + "/whole/final.safetensors"));
}

TEST_CASE("minima train --resume takes a run whose config.json predates a flag, while the flag keeps its default") {
  if (!testutil::fashion_mnist_or_skip()) return;
  testutil::TempDir tmp("train_resume_old_config");
  const std::string flags = "train --arch mlp --subset 64 --epochs 2 --checkpoint-every 0 --out " + tmp.path();
  int rc = 0;
  std::string out = run(flags + " --halt-after 1", rc);
  REQUIRE(rc != 0);
  // As a run started before the loading flags existed: its config.json records none of them.
  const std::string cfg = tmp.path() + "/config.json";
  Json j = Json::parse(read_file(cfg));
  Json kept = Json::object();
  for (const auto& [k, v] : j.at("flags").items())
    if (k != "image-size" && k != "coarse-labels" && k != "merge-valid" && k != "cache-dir") kept[k] = v;
  REQUIRE(kept.items().size() + 4 == j.at("flags").items().size());
  j["flags"] = kept;
  write_file_atomic(cfg, j.dump(2));
  // A recorded setting that changed is still refused.
  out = run(flags + " --lr 0.05 --resume", rc);
  CHECK(rc != 0);
  CHECK(out.find("was started with other settings: --lr 0.1 (now 0.05)") != std::string::npos);
  out = run(flags + " --resume", rc);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("resuming after epoch 1") != std::string::npos);
}

TEST_CASE("minima train --resume refuses a metrics.csv under another header, and logs anew once it is moved") {
  if (!testutil::fashion_mnist_or_skip()) return;
  testutil::TempDir tmp("train_resume_metrics");
  const std::string flags = "train --arch mlp --subset 64 --epochs 2 --checkpoint-every 0 --out " + tmp.path();
  int rc = 0;
  std::string out = run(flags + " --halt-after 1", rc);
  REQUIRE(rc != 0);
  const std::string csv = tmp.path() + "/metrics.csv";
  const std::string header = "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds\n";
  const std::string logged = read_file(csv);
  REQUIRE(logged.rfind(header, 0) == 0);
  // One damaged byte in the header: the rows appended after it would be read as other columns.
  std::string damaged = logged;
  damaged[3] = 'X';
  write_file_atomic(csv, damaged);
  out = run(flags + " --resume", rc);
  CHECK(rc != 0);
  CHECK(out.find("error: " + csv + " does not start with the header " + header.substr(0, header.size() - 1) +
                 " (damaged, or not written by this command); move it away to resume") != std::string::npos);
  CHECK(read_file(csv) == damaged);  // left as it was
  REQUIRE(std::rename(csv.c_str(), (csv + ".old").c_str()) == 0);
  out = run(flags + " --resume", rc);
  INFO(out);
  CHECK(rc == 0);
  const std::string fresh = read_file(csv);
  CHECK(fresh.rfind(header + "2,", 0) == 0);  // the header, then epoch 2 only
  CHECK(std::count(fresh.begin(), fresh.end(), '\n') == 2);
}

TEST_CASE("minima train saves its weights, resumes a killed run to the same weights, and starts from --init") {
  if (!testutil::fashion_mnist_or_skip()) return;
  testutil::TempDir tmp("train-resume");
  const std::string cfg = "train --arch mlp-bn --subset 600 --batch 64 --epochs 3 --momentum 0.9 --seed 4 --out ";
  int rc = 0;
  std::string out = run(cfg + tmp / "whole" + " --threads 2", rc);
  INFO(out);
  REQUIRE(rc == 0);
  const std::string weights = read_file(tmp / "whole/final.safetensors");
  CHECK(access((tmp / "whole/checkpoint.safetensors").c_str(), F_OK) != 0);  // removed at the end
  // eval of the saved weights gives the run's own final test figures.
  const Json s = Json::parse(read_file(tmp / "whole/summary.json"));
  out = run("eval --weights " + tmp / "whole/final.safetensors", rc);
  REQUIRE(rc == 0);
  const Json ev = Json::parse(out);
  CHECK(ev.at("accuracy").as_double() == doctest::Approx(s.at("test_acc").as_double()).epsilon(1e-9));
  CHECK(ev.at("loss").as_double() == doctest::Approx(s.at("test_loss").as_double()).epsilon(1e-6));

  // Killed after 2 of 3 epochs, with a checkpoint after every epoch (0, or a clock of a nanosecond)
  // and with none yet (a clock of 10^6 s): the resumed run ends with bitwise the same weights (on
  // another thread count too) and a metrics.csv of 3 rows.
  for (const char* every : {"0", "1e-9", "1e6"}) {
    const bool saved = std::string(every) != "1e6";
    const std::string dir = tmp / (std::string("killed-") + every);
    out = run(cfg + dir + " --checkpoint-every " + every + " --halt-after 2", rc);
    CHECK(rc != 0);
    CHECK(out.find("error: stopped after 2 epochs as --halt-after asked") != std::string::npos);
    CHECK((access((dir + "/checkpoint.safetensors").c_str(), F_OK) == 0) == saved);
    const Json started = Json::parse(read_file(dir + "/config.json"));
    CHECK(!started.contains("resumes"));
    out = run(cfg + dir + " --threads 1 --resume", rc);
    INFO(out);
    REQUIRE(rc == 0);
    CHECK((out.find("resuming after epoch 2") != std::string::npos) == saved);
    // config.json keeps the first start and records the resume, with the flags it ran with.
    const Json resumed = Json::parse(read_file(dir + "/config.json"));
    CHECK(resumed.at("started").as_string() == started.at("started").as_string());
    REQUIRE(resumed.at("resumes").size() == 1);
    CHECK(resumed.at("resumes")[0].at("git_revision").as_string() == started.at("git_revision").as_string());
    CHECK(resumed.at("flags").at("threads").as_int() == 1);
    CHECK(read_file(dir + "/final.safetensors") == weights);
    std::istringstream csv(read_file(dir + "/metrics.csv"));
    std::string line;
    int lines = 0;
    while (std::getline(csv, line)) ++lines;
    CHECK(lines == 4);
    // Finished: a further --resume does nothing; other settings are refused.
    out = run(cfg + dir + " --resume", rc);
    CHECK(rc == 0);
    CHECK(out.find("finished earlier") != std::string::npos);
    out = run(cfg + dir + " --resume --lr 0.5", rc);
    CHECK(rc != 0);
    CHECK(out.find("was started with other settings: --lr 0.1 (now 0.5)") != std::string::npos);
  }

  // --init: a run that starts from the saved weights and barely moves them (lr 1e-30 changes no
  // float32 weight of this size; the MLP has no batch-norm statistics to update) tests like them.
  out = run("train --arch mlp --subset 600 --epochs 1 --seed 4 --out " + tmp / "mlp", rc);
  REQUIRE(rc == 0);
  out = run("train --arch mlp --subset 600 --epochs 1 --lr 1e-30 --seed 4 --init " + tmp / "mlp/final.safetensors" +
                " --out " + tmp / "from-init",
            rc);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(read_file(tmp / "from-init/final.safetensors") == read_file(tmp / "mlp/final.safetensors"));
  const Json si = Json::parse(read_file(tmp / "from-init/summary.json"));
  CHECK(si.at("init").as_string() == tmp / "mlp/final.safetensors");
  // Weights of another network are refused, naming the mismatch, before anything is written.
  out = run("train --arch mlp-bn --init " + tmp / "mlp/final.safetensors" + " --out " + tmp / "bad", rc);
  CHECK(rc != 0);
  CHECK(out.find("error: loading '" + tmp / "mlp/final.safetensors" + "'") != std::string::npos);
  CHECK(access((tmp / "bad/config.json").c_str(), F_OK) != 0);
}

TEST_CASE("minima inspect prints a file's checksum state, metadata and each tensor's range, and fails on damage") {
  testutil::TempDir tmp("inspect");
  Generator g(21);
  // A checkpoint-like file: model tensors of three dtypes, one with non-finite values, and an
  // optimizer slot.
  Tensor w = randn({6, 5}, g), b = uniform({7}, -2.0, 3.0, g), counts = randint({4}, 1000, g);
  Tensor half = randn({9}, g).to(DType::bf16), slot = randn({6, 5}, g);
  {
    NoGradGuard ng;
    b.view({7}).narrow(0, 2, 1).fill_(NAN);
    b.view({7}).narrow(0, 5, 1).fill_(-INFINITY);
  }
  const nn::NamedTensors ts{{"fc.weight", w},
                            {"fc.bias", b},
                            {"bn.num_batches_tracked", counts},
                            {"head.weight", half},
                            {std::string(nn::kOptPrefix) + "fc.weight.momentum_buffer", slot}};
  const std::string path = tmp.path() + "/ckpt.safetensors";
  nn::save_safetensors(path, ts, {{"arch", "mlp"}, {"note", "a = b"}});

  // --json: every figure against the same figures computed here.
  int rc = 0;
  std::string out = run("inspect --json --file " + path, rc);
  INFO(out);
  REQUIRE(rc == 0);
  const Json j = Json::parse(out);
  CHECK(j.at("checksum").as_string() == "verified");
  CHECK(j.at("metadata").at("note").as_string() == "a = b");
  CHECK(!j.at("metadata").contains(nn::kChecksumKey));
  CHECK(j.at("model_values").as_int() == 30 + 7 + 4 + 9);
  CHECK(j.at("optimizer_values").as_int() == 30);
  CHECK(j.at("nonfinite_values").as_int() == 2);
  REQUIRE(j.at("tensors").size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const Json& e = j.at("tensors")[i];
    const Tensor v = ts[i].second.to(DType::f64);
    CAPTURE(ts[i].first);
    CHECK(e.at("name").as_string() == ts[i].first);
    CHECK(e.at("dtype").as_string() == nn::safetensors_dtype(ts[i].second.dtype()));
    CHECK(e.at("numel").as_int() == v.numel());
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    int64_t finite = 0;
    for (double x : v.to_vector<double>())
      if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x), sum += x, ++finite;
    CHECK(e.at("nonfinite").as_int() == v.numel() - finite);
    CHECK(e.at("min").as_double() == doctest::Approx(lo).epsilon(1e-9));
    CHECK(e.at("max").as_double() == doctest::Approx(hi).epsilon(1e-9));
    CHECK(e.at("mean").as_double() == doctest::Approx(sum / double(finite)).epsilon(1e-9));
  }
  CHECK(j.at("tensors")[2].at("shape").size() == 1);

  // The table: the checksum line, the non-finite count, the metadata, a row per tensor.
  out = run("inspect --file " + path, rc);
  REQUIRE(rc == 0);
  CHECK(out.find("checksum   verified") != std::string::npos);
  CHECK(out.find("tensors    4 of the model (50 values), 1 of the optimizer (30 values)") != std::string::npos);
  CHECK(out.find("non-finite 2 values in 1 tensor\n") != std::string::npos);
  CHECK(out.find("metadata   note = a = b\n") != std::string::npos);
  CHECK(out.find("\nfc.bias ") != std::string::npos);
  CHECK(out.find("\nbn.num_batches_tracked ") != std::string::npos);

  // One byte changed: the command fails and names the tensor.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t n = 0;
    f.read(reinterpret_cast<char*>(&n), 8);
    f.seekp(std::streamoff(8 + n + 4));  // fc.weight's second value
    f.put('\x7f');
  }
  out = run("inspect --file " + path, rc);
  CHECK(rc != 0);
  CHECK(out.find("error: load_safetensors: '" + path + "': 1 of 5 tensors do not match") != std::string::npos);
  CHECK(out.find("('fc.weight')") != std::string::npos);
  // A file from another tool has no checksum: shown, not refused.
  {
    const std::string h = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    const uint64_t n = h.size();
    const float x[2] = {1.5f, -0.5f};
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(h.data(), std::streamsize(n));
    f.write(reinterpret_cast<const char*>(x), sizeof x);
  }
  out = run("inspect --file " + path, rc);
  REQUIRE(rc == 0);
  CHECK(out.find("checksum   absent") != std::string::npos);
  CHECK(Json::parse(run("inspect --json --file " + path, rc)).at("tensors")[0].at("mean").as_double() == 0.5);
  out = run("inspect", rc);
  CHECK(rc != 0);
  CHECK(out.find("error: inspect: --file is required") != std::string::npos);
  out = run("inspect --file " + tmp.path() + "/none.safetensors", rc);
  CHECK(rc != 0);
  CHECK(out.find("cannot open") != std::string::npos);
}

TEST_CASE("a run's checkpoint records the optimizer steps it took in train_state") {
  if (!testutil::fashion_mnist_or_skip()) return;
  testutil::TempDir tmp("inspect_step");
  int rc = 0;
  // 600 images in batches of 128: 5 steps an epoch, 10 after the two epochs before the halt.
  std::string out =
      run("train --arch mlp --subset 600 --batch 128 --epochs 3 --checkpoint-every 0 --halt-after 2 --out " +
              tmp.path() + "/run",
          rc);
  REQUIRE(rc != 0);
  out = run("inspect --json --file " + tmp.path() + "/run/checkpoint.safetensors", rc);
  INFO(out);
  REQUIRE(rc == 0);
  const Json ts = Json::parse(Json::parse(out).at("metadata").at("train_state").as_string());
  CHECK(ts.at("epoch").as_int() == 2);
  CHECK(ts.at("optimizer").at("steps").as_int() == 10);
  CHECK(ts.at("step").as_int() == 10);  // it used to read 0 in every run's checkpoint
}

TEST_CASE("minima compare: bitwise equal, or the largest differences and the values outside the tolerance") {
  testutil::TempDir tmp("compare");
  Generator g(41);
  const nn::NamedTensors base{{"w", randn({5, 7}, g)}, {"b", randn({7}, g).to(DType::f64)}, {"n", randint({3}, 9, g)}};
  auto save = [&](const std::string& name, const nn::NamedTensors& ts) {
    const std::string p = tmp.path() + "/" + name;
    nn::save_safetensors(p, ts, {{"seed", name}});
    return p;
  };
  auto copy_of = [&] {
    nn::NamedTensors c;
    for (const auto& [k, t] : base) c.emplace_back(k, t.clone());
    return c;
  };
  const std::string a = save("a", base), same = save("same", copy_of());
  int rc = 0;
  std::string out = run("compare --a " + a + " --b " + same, rc);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("all 3 tensors bitwise equal\n") != std::string::npos);
  CHECK(out.find("metadata 'seed': 'a' against 'same'") != std::string::npos);  // reported, not failed

  // Two values of w changed: the largest differences are those of the changed values, exactly.
  nn::NamedTensors changed = copy_of();
  float* w = changed[0].second.data<float>();
  const float w0 = w[3], w1 = w[20];
  w[3] = w0 + 1e-3f;
  w[20] = w1 * (1 + 4e-6f);
  const double abs0 = std::fabs(double(w[3]) - double(w0)), abs1 = std::fabs(double(w[20]) - double(w1));
  const double rel0 = abs0 / std::max(std::fabs(double(w[3])), std::fabs(double(w0)));
  const double rel1 = abs1 / std::max(std::fabs(double(w[20])), std::fabs(double(w1)));
  const std::string b = save("b", changed);
  out = run("compare --json --a " + b + " --b " + a, rc);
  CHECK(rc != 0);
  CHECK(out.find("error: compare: 1 of 3 tensors differ beyond --atol 0 --rtol 0") != std::string::npos);
  const Json j = Json::parse(out.substr(0, out.find("\nerror:")));
  const Json& row = j.at("per_tensor")[0];
  CHECK(row.at("name").as_string() == "w");
  CHECK_FALSE(row.at("bitwise_equal").as_bool());
  CHECK(row.at("outside").as_int() == 2);
  CHECK(row.at("max_abs").as_double() == doctest::Approx(std::max(abs0, abs1)).epsilon(1e-12));
  CHECK(row.at("max_rel").as_double() == doctest::Approx(std::max(rel0, rel1)).epsilon(1e-12));
  CHECK(j.at("per_tensor")[1].at("bitwise_equal").as_bool());
  CHECK(j.at("bitwise_equal").as_int() == 2);
  // An absolute tolerance between the two differences leaves one value outside; a relative one
  // above both leaves none.
  const double mid = std::sqrt(abs0 * abs1);
  out = run("compare --a " + b + " --b " + a + " --atol " + str(mid), rc);
  CHECK(rc != 0);
  CHECK(out.find("differs") != std::string::npos);
  out = run("compare --json --a " + b + " --b " + a + " --atol " + str(mid), rc);
  CHECK(Json::parse(out.substr(0, out.find("\nerror:"))).at("per_tensor")[0].at("outside").as_int() == 1);
  out = run("compare --a " + b + " --b " + a + " --rtol 1e-2", rc);
  CHECK(rc == 0);
  CHECK(out.find("3 tensors: 2 bitwise equal, the other 1 within --atol 0 --rtol 0.01") != std::string::npos);

  // A NaN meets a number: outside whatever the tolerance; a tensor missing, or of another shape.
  nn::NamedTensors odd = copy_of();
  odd[1].second.data<double>()[2] = NAN;
  odd[2].second = randint({4}, 9, g);
  odd.emplace_back("extra", randn({2}, g));
  const std::string c = save("c", odd);
  out = run("compare --a " + c + " --b " + a + " --rtol 1", rc);
  CHECK(rc != 0);
  CHECK(out.find("error: compare: 3 of 4 tensors differ beyond --atol 0 --rtol 1") != std::string::npos);
  CHECK(out.find("I64 [4] against I64 [3]") != std::string::npos);
  CHECK(out.find("only in --a") != std::string::npos);
  out = run("compare --json --a " + c + " --b " + a + " --rtol 1", rc);
  CHECK(Json::parse(out.substr(0, out.find("\nerror:"))).at("per_tensor")[1].at("outside").as_int() == 1);

  out = run("compare --a " + a, rc);
  CHECK(rc != 0);
  CHECK(out.find("error: compare: --a and --b are both required") != std::string::npos);
  out = run("compare --a " + a + " --b " + a + " --atol -1", rc);
  CHECK(rc != 0);
  CHECK(out.find("must be >= 0") != std::string::npos);
}
