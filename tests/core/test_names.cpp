// tests/core/test_names.cpp: every test case can be run by its name. ctest registers each doctest
// case by name (doctest_discover_tests) and runs it with -tc=<name>; CMake reads a ';' in a name
// as a list separator, so such a case became two ctest entries whose filters matched nothing and
// which "passed" having run no assertion. Five cases were lost that way before this check.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

TEST_CASE("test names: none holds a semicolon, which ctest would split into two names that run nothing") {
  const std::regex test_case(R"re((?:CUDA_)?TEST_CASE\(\s*"((?:[^"\\]|\\.)*)")re");
  std::vector<std::string> bad;
  int cases = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(MINIMA_SOURCE_DIR) + "/tests")) {
    const std::string ext = e.path().extension().string();
    if (!e.is_regular_file() || (ext != ".cpp" && ext != ".h")) continue;
    std::ifstream f(e.path());
    std::stringstream text;
    text << f.rdbuf();
    const std::string s = text.str();
    for (auto it = std::sregex_iterator(s.begin(), s.end(), test_case); it != std::sregex_iterator(); ++it) {
      ++cases;
      if ((*it)[1].str().find(';') != std::string::npos)
        bad.push_back(e.path().filename().string() + ": " + (*it)[1].str());
    }
  }
  for (const auto& b : bad) MESSAGE(b);
  CHECK(bad.empty());
  CHECK(cases > 250);  // the scan found the suite
}
