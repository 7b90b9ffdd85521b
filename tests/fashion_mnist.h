// tests/fashion_mnist.h: the real Fashion-MNIST for the tests that train or evaluate on it. The
// Debian package dataset-fashion-mnist provides it; where it is missing, such a test says so and
// returns early (doctest counts it as passed, so the message is what tells a skip apart). The
// dataset is read once per test binary.
#pragma once
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "core/error.h"
#include "data/dataset.h"

namespace testutil {

// The dataset, or nullopt after a MESSAGE "<what>: skipped, Fashion-MNIST is not available (<why>)"
// ("skipped: ..." when `what` is left at its default).
inline const minima::data::Splits* fashion_mnist_or_skip(const char* what = "skipped") {
  static std::string why;
  static const std::optional<minima::data::Splits> splits = []() -> std::optional<minima::data::Splits> {
    try {
      return minima::data::load_dataset("fashion-mnist", "");
    } catch (const minima::Error& e) {
      why = e.what();
      return std::nullopt;
    }
  }();
  // The word "skipped" tells the test runner (tests/test_main.cpp) why no assertion may follow.
  if (!splits && std::string(what) == "skipped")
    MESSAGE("skipped: Fashion-MNIST is not available (", why, ")");
  else if (!splits)
    MESSAGE(what, ": skipped, Fashion-MNIST is not available (", why, ")");
  return splits ? &*splits : nullptr;
}

}  // namespace testutil
