// core/atomic_file.cpp: see atomic_file.h. POSIX calls: an exclusive create (O_EXCL) and the
// errno of a failed write or close.
#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace minima {

namespace {
std::atomic<uint64_t> g_counter{0};
}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_ = str(path_, ".tmp.", ::getpid(), ".", g_counter++);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  MINIMA_CHECK(fd_ >= 0, "cannot open ", tmp_, " for writing (", std::strerror(errno), ")");
}

AtomicFile::~AtomicFile() {
  if (fd_ < 0) return;
  ::close(fd_);
  std::remove(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  MINIMA_CHECK(fd_ >= 0, "AtomicFile: write to ", path_, " after commit");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    MINIMA_CHECK(w > 0, "writing ", tmp_, " failed (", w < 0 ? std::strerror(errno) : "no progress", "; disk full?)");
    p += w;
    n -= size_t(w);
  }
}

void AtomicFile::commit() {
  MINIMA_CHECK(fd_ >= 0, "AtomicFile: ", path_, " committed twice");
  const bool closed = ::close(fd_) == 0;  // a delayed write error (NFS, quota) shows here
  fd_ = -1;
  if (!closed) {
    const int e = errno;
    std::remove(tmp_.c_str());
    throw Error(str("writing ", tmp_, " failed (", std::strerror(e), "; disk full?)"));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp_.c_str());
    throw Error(str("cannot rename ", tmp_, " to ", path_, " (", std::strerror(e), ")"));
  }
}

}  // namespace minima
