// tests/core/test_smoke.cpp: the first end-to-end check of the tensor front-end.
#include <doctest/doctest.h>

#include "core/ops.h"
using namespace minima;

TEST_CASE("a 2x2 matrix product through the front-end") {
  Tensor a = from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = matmul(a, a);
  CHECK(b.to_vector<float>() == std::vector<float>{7, 10, 15, 22});
}
