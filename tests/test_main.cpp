// tests/test_main.cpp: doctest's main, shared by every test binary. It also holds every test case
// to checking something: one that runs to its end without a single assertion fails the run (a
// test that asserts nothing would otherwise pass unseen), unless it said why it did not run its
// checks with a MESSAGE that contains "skipped" (no device, no PyTorch, no dataset).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

std::vector<std::string> g_silent;  // the test cases that ran and asserted nothing

struct AssertsSomething : doctest::IReporter {
  std::string name;
  bool skipped = false;
  explicit AssertsSomething(const doctest::ContextOptions& /*options*/) {}
  void test_case_start(const doctest::TestCaseData& tc) override {
    name = tc.m_name;
    skipped = false;
  }
  void log_message(const doctest::MessageData& m) override {
    skipped |= std::string(m.m_string.c_str()).find("skipped") != std::string::npos;
  }
  // Called once per test case, after all its subcases, with their assertions counted together.
  void test_case_end(const doctest::CurrentTestCaseStats& st) override {
    if (st.numAssertsCurrentTest == 0 && st.failure_flags == 0 && !skipped) g_silent.push_back(name);
  }
  void report_query(const doctest::QueryData& /*q*/) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& /*st*/) override {}
  void test_case_reenter(const doctest::TestCaseData& /*tc*/) override {}
  void test_case_exception(const doctest::TestCaseException& /*e*/) override {}
  void subcase_start(const doctest::SubcaseSignature& /*s*/) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& /*a*/) override {}
  void test_case_skipped(const doctest::TestCaseData& /*tc*/) override {}
};

REGISTER_LISTENER("asserts-something", 1, AssertsSomething);

}  // namespace

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit() || g_silent.empty()) return rc;
  std::fprintf(stderr, "error: %zu test case%s ran to the end without an assertion (and said no \"skipped\"):\n",
               g_silent.size(), g_silent.size() > 1 ? "s" : "");
  for (const std::string& n : g_silent) std::fprintf(stderr, "  %s\n", n.c_str());
  return rc != 0 ? rc : 1;
}
