// apps/models_cmd.cpp: `minima models`: every architecture with its parameter count for a given
// input shape and class count, one "name params" line each.
#include <iostream>

#include "apps/cli.h"
#include "core/parse.h"
#include "nn/models.h"

namespace minima::app {
namespace {

// "3x32x32" -> {3, 32, 32}
Shape parse_chw(const std::string& s) {
  Shape out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t x = s.find('x', start);
    std::string part = s.substr(start, x == std::string::npos ? std::string::npos : x - start);
    std::optional<int64_t> v = parse_int64(part);
    MINIMA_CHECK(v && *v > 0, "--in expects CxHxW with positive sizes, e.g. 3x32x32, got '", s, "'");
    out.push_back(*v);
    if (x == std::string::npos) break;
    start = x + 1;
  }
  MINIMA_CHECK(out.size() == 3, "--in expects CxHxW, e.g. 3x32x32, got '", s, "'");
  return out;
}

int run_models(cli::Args& a) {
  a.set_description(
      "Lists every architecture (--arch values) with its parameter count; one that cannot take --in\n"
      "(too small for its pooling and strided layers) is named on stderr instead.");
  std::string in = a.get_string("in", "3x32x32", "input shape CxHxW");
  int64_t classes = a.get_int("classes", 10, "number of classes");
  std::string only = a.get_string("arch", "", "only this architecture (default: all)");
  bool tree = a.get_flag("tree", "also print the module tree");
  if (a.finish()) return 0;
  Shape chw = parse_chw(in);
  std::vector<std::string> names = nn::model_names();
  if (!only.empty()) {
    Generator g(0);
    nn::make_model(only, chw, classes, g);  // throws, listing the known names, for an unknown one
    names = {only};
  }
  int64_t listed = 0;
  for (const auto& name : names) {
    Generator g(0);
    std::shared_ptr<nn::Module> m;
    try {
      m = nn::make_model(name, chw, classes, g);
    } catch (const nn::InputShapeError& e) {
      if (!only.empty()) throw;
      // The listing goes on: other architectures may take this shape.
      std::cerr << "note: " << e.what() << "\n";
      continue;
    }
    std::cout << name << " " << m->num_parameters() << "\n";
    if (tree) std::cout << m->tree() << "\n";
    ++listed;
  }
  MINIMA_CHECK(listed > 0, "no architecture takes inputs of shape ", shape_str(chw));
  return 0;
}

cli::Register reg("models", "list the architectures with their parameter counts", run_models);

}  // namespace
}  // namespace minima::app
