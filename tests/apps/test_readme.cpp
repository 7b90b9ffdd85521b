// tests/apps/test_readme.cpp: the README stays true to the CLI. Every `build/minima ...` example in
// the project's Markdown files names a command that exists and only flags that its --help lists;
// every command of `minima --help` and every benchmark of `minima bench --help` has an example in
// README.md's table; every repository path that README.md or a guide in docs/ names in
// backquotes exists; and its PyTorch snippet runs.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "app_test_util.h"
#include "core/json.h"
#include "core/random.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "torch_peer.h"

namespace {

std::string source_file(const std::string& rel) {
  return minima::read_file(std::string(MINIMA_SOURCE_DIR) + "/" + rel);
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> w;
  std::string t;
  while (in >> t) w.push_back(t);
  return w;
}

// The names listed under `heading` in a usage text: the first word of each indented line after it.
std::set<std::string> listed(const std::string& usage, const std::string& heading) {
  std::set<std::string> names;
  std::istringstream in(usage);
  std::string line;
  bool in_list = false;
  while (std::getline(in, line)) {
    if (line == heading) {
      in_list = true;
    } else if (in_list && line.rfind("  ", 0) == 0) {
      names.insert(words(line).at(0));
    } else if (in_list) {
      break;
    }
  }
  return names;
}

// Every `build/minima ...` in backquotes in `text`, as its words after build/minima.
std::vector<std::vector<std::string>> examples(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  const std::regex code("`build/minima( [^`]*)?`");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), code); it != std::sregex_iterator(); ++it)
    out.push_back(words((*it)[1].str()));
  return out;
}

}  // namespace

TEST_CASE("README: every command and benchmark has an example, and every example's flags exist") {
  const std::string readme = source_file("README.md");
  const auto top = apptest::run_minima("--help");
  REQUIRE(top.rc == 0);
  const std::set<std::string> commands = listed(top.output, "commands:");
  const auto bench = apptest::run_minima("bench --help");
  REQUIRE(bench.rc == 0);
  const std::set<std::string> benchmarks = listed(bench.output, "benchmarks:");
  REQUIRE(commands.count("train") == 1);
  REQUIRE(benchmarks.count("ops") == 1);

  // README's table names each command in backquotes, with an example beside it.
  std::set<std::string> with_example;
  for (const auto& ex : examples(readme)) {
    if (ex.empty()) continue;
    with_example.insert(ex[0] == "bench" && ex.size() > 1 ? "bench " + ex[1] : ex[0]);
  }
  for (const auto& c : commands) {
    if (c == "bench") continue;
    INFO("command ", c);
    CHECK(with_example.count(c) == 1);
    CHECK(readme.find("| `" + c + "` ") != std::string::npos);
  }
  for (const auto& b : benchmarks) {
    INFO("benchmark ", b);
    CHECK(with_example.count("bench " + b) == 1);
    CHECK(readme.find("| `bench " + b + "` ") != std::string::npos);
  }

  // Each example, in README.md, data/README.md and the guides in docs/: an existing command, and
  // flags its --help lists.
  std::map<std::string, std::string> help;  // command -> its --help text
  int checked = 0;
  for (const std::string doc : {"README.md", "data/README.md", "docs/performance.md", "docs/internals.md"}) {
    for (const auto& ex : examples(source_file(doc))) {
      if (ex.empty()) continue;  // the binary itself
      std::string cmd = ex[0];
      if (cmd == "bench" && ex.size() > 1 && ex[1].rfind("--", 0) != 0) cmd += " " + ex[1];
      INFO(doc, ": build/minima ", cmd, " ...");
      const bool known = commands.count(ex[0]) == 1 && (ex[0] != "bench" || benchmarks.count(cmd.substr(6)) == 1);
      CHECK(known);
      if (!known) continue;
      if (!help.count(cmd)) {
        const auto h = apptest::run_minima(cmd + " --help");
        CHECK(h.rc == 0);
        help[cmd] = h.output;
      }
      for (const auto& w : ex) {
        if (w.rfind("--", 0) != 0) continue;
        const std::string flag = w.substr(0, w.find('='));
        INFO("flag ", flag);
        CHECK(help[cmd].find("  " + flag + " ") != std::string::npos);
        ++checked;
      }
    }
  }
  CHECK(checked > 20);
}

TEST_CASE("README: the repository paths it names exist") {
  const std::string text =
      source_file("README.md") + source_file("docs/performance.md") + source_file("docs/internals.md");
  const std::regex path("`((?:apps|core|data|docs|kernels|nn|optim|scripts|tests)/[A-Za-z0-9_./-]+)");
  int seen = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), path); it != std::sregex_iterator(); ++it) {
    const std::string p = (*it)[1].str();
    INFO("README.md or a guide in docs/ names ", p);
    CHECK(std::filesystem::exists(std::string(MINIMA_SOURCE_DIR) + "/" + p));
    ++seen;
  }
  CHECK(seen >= 10);
}

TEST_CASE("README: its PyTorch snippet loads a minima weights file into the reference network") {
  if (!testutil::torch_available()) {
    MESSAGE("skipped: /usr/bin/python3 cannot import torch");
    return;
  }
  const std::string readme = source_file("README.md");
  const size_t begin = readme.find("```python\n"), end = readme.find("```\n", begin + 10);
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  std::string snippet = readme.substr(begin + 10, end - begin - 10);
  // The snippet as written, pointed at this checkout and at fresh weights of a network minima built.
  apptest::TempDir tmp("readme_python");
  const std::string weights = tmp.path() + "/final.safetensors";
  auto swap = [&](const std::string& from, const std::string& to) {
    const size_t at = snippet.find(from);
    REQUIRE(at != std::string::npos);
    snippet.replace(at, from.size(), to);
  };
  swap("\"runs/mlp/final.safetensors\"", "\"" + weights + "\"");
  swap("\"tests/crosscheck\"", "\"" + std::string(MINIMA_SOURCE_DIR) + "/tests/crosscheck\"");
  minima::Generator g(31);
  auto net = minima::nn::make_model("smallcnn", {1, 28, 28}, 10, g);
  minima::nn::save_weights(weights, *net, {"smallcnn", {1, 28, 28}, 10, "fashion-mnist", {0.5}, {0.25}, 31});
  minima::write_file_atomic(tmp.path() + "/snippet.py", snippet);
  const auto r = apptest::run_command("/usr/bin/python3 " + tmp.path() + "/snippet.py");
  INFO(r.output);
  CHECK(r.rc == 0);
  CHECK(r.output == "smallcnn " + std::to_string(net->num_parameters()) + " parameters\n");
}
