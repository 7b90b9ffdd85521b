// tests/temp_dir.h: a scratch directory for one test, shared by every suite. It is created fresh
// under $TMPDIR (or /tmp) and removed with everything in it when it goes out of scope, even
// entries a test made unreadable; set MINIMA_KEEP_TEST_DIRS to keep it for looking at a failure.
#pragma once
#include <dirent.h>
#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace testutil {

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "test") {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/minima_" + tag + "_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(::mkdtemp(buf.data()) != nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    if (!std::getenv("MINIMA_KEEP_TEST_DIRS")) remove_tree(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

  // Removes `p` and everything under it, restoring the permissions a test may have taken away.
  static void remove_tree(const std::string& p) {
    ::chmod(p.c_str(), 0755);
    if (DIR* d = ::opendir(p.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        std::string c = p + "/" + n;
        struct stat st;
        if (::lstat(c.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
          remove_tree(c);
        else
          ::unlink(c.c_str());
      }
      ::closedir(d);
    }
    ::rmdir(p.c_str());
  }

 private:
  std::string path_;
};

}  // namespace testutil
