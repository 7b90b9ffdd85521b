// core/json.cpp: JSON writer and recursive-descent parser; atomic file writes.
#include "core/json.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/parse.h"

namespace minima {

Json& Json::operator[](const std::string& key) {
  if (type_ == Type::Null) type_ = Type::Object;
  MINIMA_CHECK(type_ == Type::Object, "json: indexing a non-object with key '", key, "'");
  for (auto& kv : o_)
    if (kv.first == key) return kv.second;
  o_.emplace_back(key, Json());
  return o_.back().second;
}

const Json& Json::at(const std::string& key) const {
  MINIMA_CHECK(type_ == Type::Object, "json: looking up key '", key, "' in a non-object");
  for (auto& kv : o_)
    if (kv.first == key) return kv.second;
  throw Error(str("json: missing key '", key, "'"));
}

bool Json::contains(const std::string& key) const {
  if (type_ != Type::Object) return false;
  for (auto& kv : o_)
    if (kv.first == key) return true;
  return false;
}

void Json::push_back(Json v) {
  if (type_ == Type::Null) type_ = Type::Array;
  MINIMA_CHECK(type_ == Type::Array, "json: push_back on a non-array");
  a_.push_back(std::move(v));
}

double Json::as_double() const {
  MINIMA_CHECK(type_ == Type::Number, "json: expected a number");
  return n_;
}
int64_t Json::as_int() const {
  MINIMA_CHECK(type_ == Type::Number, "json: expected a number");
  return is_int_ ? i_ : int64_t(std::llround(n_));
}
bool Json::as_bool() const {
  MINIMA_CHECK(type_ == Type::Bool, "json: expected a boolean");
  return b_;
}
const std::string& Json::as_string() const {
  MINIMA_CHECK(type_ == Type::String, "json: expected a string");
  return s_;
}

static void escape(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

void Json::dump_to(std::string& out, int indent, int depth) const {
  auto nl = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(size_t(d) * size_t(indent), ' ');
  };
  switch (type_) {
    case Type::Null: out += "null"; break;
    case Type::Bool: out += b_ ? "true" : "false"; break;
    case Type::Number: {
      if (is_int_) {
        out += std::to_string(i_);
      } else if (!std::isfinite(n_)) {
        out += "null";  // JSON has no NaN/Inf
      } else {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.10g", n_);
        out += buf;
      }
      break;
    }
    case Type::String: escape(out, s_); break;
    case Type::Array: {
      out += '[';
      for (size_t i = 0; i < a_.size(); ++i) {
        if (i) out += indent < 0 ? "," : ", ";
        a_[i].dump_to(out, -1, 0);  // arrays stay on one line
      }
      out += ']';
      break;
    }
    case Type::Object: {
      out += '{';
      for (size_t i = 0; i < o_.size(); ++i) {
        if (i) out += ',';
        nl(depth + 1);
        escape(out, o_[i].first);
        out += indent < 0 ? ":" : ": ";
        o_[i].second.dump_to(out, indent, depth + 1);
      }
      if (!o_.empty()) nl(depth);
      out += '}';
      break;
    }
  }
}

std::string Json::dump(int indent) const {
  std::string s;
  dump_to(s, indent, 0);
  return s;
}

namespace {
struct Parser {
  const std::string& t;
  size_t i = 0;
  [[noreturn]] void fail(const char* what) { throw Error(str("json: ", what, " at byte ", i)); }
  void ws() {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\t' || t[i] == '\r')) ++i;
  }
  bool lit(const char* s) {
    size_t n = std::strlen(s);
    if (t.compare(i, n, s) == 0) {
      i += n;
      return true;
    }
    return false;
  }
  std::string string() {
    if (t[i] != '"') fail("expected a string");
    ++i;
    std::string s;
    while (true) {
      if (i >= t.size()) fail("unterminated string");
      char c = t[i++];
      if (c == '"') break;
      if (c == '\\') {
        if (i >= t.size()) fail("unterminated escape");
        char e = t[i++];
        switch (e) {
          case '"': s += '"'; break;
          case '\\': s += '\\'; break;
          case '/': s += '/'; break;
          case 'b': s += '\b'; break;
          case 'f': s += '\f'; break;
          case 'n': s += '\n'; break;
          case 'r': s += '\r'; break;
          case 't': s += '\t'; break;
          case 'u': {
            unsigned cp = hex4();
            // A code point past U+FFFF comes as a surrogate pair (as Python's json.dumps writes
            // it): one UTF-8 sequence of four bytes, not one of three for each half.
            if (cp >= 0xDC00 && cp <= 0xDFFF) fail("bad \\u escape (a low surrogate without a high one before it)");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              const unsigned lo = lit("\\u") ? hex4() : 0;
              if (lo < 0xDC00 || lo > 0xDFFF) fail("bad \\u escape (a high surrogate without a low one after it)");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(s, cp);
            break;
          }
          default: fail("bad escape");
        }
      } else if (static_cast<unsigned char>(c) < 0x20) {
        --i;
        fail("control character in a string (JSON writes it as an escape)");
      } else {
        s += c;
      }
    }
    return s;
  }
  // Exactly four hex digits of a \u escape (std::stoul would stop at the first non-digit and
  // throw its own exception type on none).
  unsigned hex4() {
    unsigned cp = 0;
    for (int k = 0; k < 4; ++k, ++i) {
      char h = i < t.size() ? t[i] : '\0';
      if (!std::isxdigit(static_cast<unsigned char>(h))) fail("bad \\u escape (expected four hex digits)");
      cp = cp * 16 + unsigned(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : std::tolower(h) - 'a' + 10);
    }
    return cp;
  }
  static void append_utf8(std::string& s, unsigned cp) {
    if (cp < 0x80) {
      s += char(cp);
    } else if (cp < 0x800) {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += char(0xE0 | (cp >> 12));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    } else {
      s += char(0xF0 | (cp >> 18));
      s += char(0x80 | ((cp >> 12) & 0x3F));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    }
  }
  Json value(int depth) {
    if (depth > 256) fail("nesting too deep");
    ws();
    if (i >= t.size()) fail("unexpected end");
    char c = t[i];
    if (c == '{') {
      ++i;
      Json o = Json::object();
      ws();
      if (i < t.size() && t[i] == '}') {
        ++i;
        return o;
      }
      while (true) {
        ws();
        const size_t key_at = i;
        std::string k = string();
        // A repeated key would silently replace the first value (a safetensors header could then
        // point one tensor's name at other bytes): refused, as ambiguous.
        if (o.contains(k)) {
          i = key_at;
          fail(("duplicate key \"" + k + "\"").c_str());
        }
        ws();
        if (i >= t.size() || t[i] != ':') fail("expected ':'");
        ++i;
        o[k] = value(depth + 1);
        ws();
        if (i < t.size() && t[i] == ',') {
          ++i;
          continue;
        }
        if (i < t.size() && t[i] == '}') {
          ++i;
          return o;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++i;
      Json a = Json::array();
      ws();
      if (i < t.size() && t[i] == ']') {
        ++i;
        return a;
      }
      while (true) {
        a.push_back(value(depth + 1));
        ws();
        if (i < t.size() && t[i] == ',') {
          ++i;
          continue;
        }
        if (i < t.size() && t[i] == ']') {
          ++i;
          return a;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') return Json(string());
    if (lit("true")) return Json(true);
    if (lit("false")) return Json(false);
    if (lit("null")) return Json();
    size_t start = i;
    bool is_int = true;
    if (t[i] == '-') ++i;
    while (i < t.size() && (std::isdigit((unsigned char)t[i]) || t[i] == '.' || t[i] == 'e' || t[i] == 'E' ||
                            t[i] == '+' || t[i] == '-')) {
      if (!std::isdigit((unsigned char)t[i])) is_int = false;
      ++i;
    }
    if (i == start) fail("unexpected character");
    std::string num = t.substr(start, i - start);
    if (is_int) {
      if (std::optional<int64_t> v = parse_int64(num)) return Json(*v);
    } else if (std::optional<double> v = parse_double(num)) {
      return Json(*v);
    }
    i = start;
    fail("bad number");
  }
};
}  // namespace

Json Json::parse(const std::string& text) {
  Parser p{text};
  Json v = p.value(0);
  p.ws();
  if (p.i != text.size()) p.fail("trailing characters");
  return v;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MINIMA_CHECK(f.good(), "cannot open ", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace minima
