// core/json.h: a small JSON value (null, bool, number, string, array, object) with a writer and
// a strict parser. Used for config.json/summary.json and the safetensors header. Objects keep
// insertion order so files read in the order they were written.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace minima {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::Bool), b_(b) {}
  Json(int v) : type_(Type::Number), n_(double(v)), is_int_(true), i_(v) {}
  Json(int64_t v) : type_(Type::Number), n_(double(v)), is_int_(true), i_(v) {}
  Json(uint64_t v) : type_(Type::Number), n_(double(v)), is_int_(true), i_(int64_t(v)) {}
  Json(double v) : type_(Type::Number), n_(v) {}
  Json(const char* s) : type_(Type::String), s_(s) {}
  Json(std::string s) : type_(Type::String), s_(std::move(s)) {}
  template <class T>
  Json(const std::vector<T>& v) : type_(Type::Array) {
    for (const auto& x : v) a_.emplace_back(x);
  }
  static Json array() {
    Json j;
    j.type_ = Type::Array;
    return j;
  }
  static Json object() {
    Json j;
    j.type_ = Type::Object;
    return j;
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_object() const { return type_ == Type::Object; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_string() const { return type_ == Type::String; }
  bool is_number() const { return type_ == Type::Number; }
  // A number written without a fraction or exponent (as_int() of any other number rounds it).
  bool is_integer() const { return type_ == Type::Number && is_int_; }

  // Object access: operator[] inserts (turning null into an object); at() throws when missing.
  Json& operator[](const std::string& key);
  const Json& at(const std::string& key) const;
  bool contains(const std::string& key) const;
  const std::vector<std::pair<std::string, Json>>& items() const { return o_; }
  // Array access.
  void push_back(Json v);
  size_t size() const { return type_ == Type::Array ? a_.size() : o_.size(); }
  const Json& operator[](size_t i) const { return a_.at(i); }
  const std::vector<Json>& elements() const { return a_; }

  double as_double() const;
  int64_t as_int() const;
  bool as_bool() const;
  const std::string& as_string() const;

  // Compact when indent < 0, else pretty-printed with that many spaces.
  std::string dump(int indent = 2) const;
  static Json parse(const std::string& text);  // throws minima::Error with the byte offset

 private:
  void dump_to(std::string& out, int indent, int depth) const;
  Type type_ = Type::Null;
  bool b_ = false;
  double n_ = 0;
  bool is_int_ = false;
  int64_t i_ = 0;
  std::string s_;
  std::vector<Json> a_;
  std::vector<std::pair<std::string, Json>> o_;
};

// Writes `text` to `path` atomically (core/atomic_file.h: a temporary file, then rename).
void write_file_atomic(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);

}  // namespace minima
