// tests/doctest_cstrings.h: put ahead of every test source by CMakeLists.txt (not test_main.cpp,
// which compiles doctest itself). doctest 2.4 prints a const char* as a pointer, so failure
// context such as INFO(dtype_name(t)) read "0x55d0c3a1f2e5", not "float32"; its own switch for
// this (DOCTEST_CONFIG_TREAT_CHAR_STAR_AS_STRING) does not compile in 2.4.9. This changes the
// printing only: CHECK(p == q) on two pointers still compares the pointers.
#pragma once
#include <doctest/doctest.h>

namespace doctest {
template <>
struct StringMaker<const char*> {
  static String convert(const char* s) { return s ? String(s) : String("nullptr"); }
};
template <>
struct StringMaker<char*> {
  static String convert(const char* s) { return s ? String(s) : String("nullptr"); }
};
}  // namespace doctest
