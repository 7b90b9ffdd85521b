// core/error.h: minima's one exception type and the check macro every module uses.
// Messages say what was expected and what was found; the CLI prints them as "error: ...".
#pragma once
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace minima {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class T>
inline void stream_one(std::ostream& os, const T& v) {
  os << v;
}
// A NaN prints as "nan" whatever its sign bit (the stream would print "-nan" for some, which
// reads as a number with a sign; a NaN has none).
inline void stream_one(std::ostream& os, double v) {
  if (std::isnan(v))
    os << "nan";
  else
    os << v;
}
inline void stream_one(std::ostream& os, float v) { stream_one(os, double(v)); }
template <class T>
inline void stream_one(std::ostream& os, const std::vector<T>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) {
    os << (i ? ", " : "");
    stream_one(os, v[i]);
  }
  os << ']';
}

// str(a, b, c): concatenate anything printable (vectors print as [1, 2, 3]).
template <class... A>
std::string str(const A&... a) {
  std::ostringstream s;
  (stream_one(s, a), ...);
  return s.str();
}

}  // namespace minima

#define MINIMA_CHECK(cond, ...)                                     \
  do {                                                              \
    if (!(cond)) throw ::minima::Error(::minima::str(__VA_ARGS__)); \
  } while (0)
