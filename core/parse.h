// core/parse.h: numbers parsed from a whole string. std::stoll and std::stod accept a prefix ("1x"
// reads as 1, " 2" as 2) and throw their own exception types, which say only "stoll"; these take
// the whole string or return nothing, so each caller words its own error (the flag, the file, the
// entry) without a try/catch.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace minima {

// Decimal integers with an optional sign ('-' for parse_int64 only) and nothing else; nullopt when
// out of range.
std::optional<int64_t> parse_int64(const std::string& s);
std::optional<uint64_t> parse_uint64(const std::string& s);
// A finite decimal number ("1", "-2.5", "1e-3"; not "inf", "nan", hex floats or an exponent too
// large for a double). A number too small for the normal range ("1e-310") reads as the nearest
// double, a subnormal or 0, as JSON readers and strtod do.
std::optional<double> parse_double(const std::string& s);

}  // namespace minima
