// core/parse.cpp: whole-string number parsing (see parse.h).
#include "core/parse.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace minima {

namespace {
template <class T>
std::optional<T> parse_integer(const std::string& s) {
  const char* begin = s.data();
  const char* end = begin + s.size();
  if (s.size() > 1 && s[0] == '+' && std::isdigit(static_cast<unsigned char>(s[1]))) ++begin;  // "+3" as stoll read it
  T v{};
  auto [ptr, ec] = std::from_chars(begin, end, v);
  if (s.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return v;
}
}  // namespace

std::optional<int64_t> parse_int64(const std::string& s) { return parse_integer<int64_t>(s); }
std::optional<uint64_t> parse_uint64(const std::string& s) { return parse_integer<uint64_t>(s); }

std::optional<double> parse_double(const std::string& s) {
  // strtod would also skip leading blanks and read "inf", "nan" and hex floats: only plain decimals.
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E')
      return std::nullopt;
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  // strtod reports ERANGE both for an exponent too large (the result is +-inf) and for a number
  // below the normal range ("1e-310"), which it rounds to the nearest subnormal or to 0: only the
  // first is refused.
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace minima
