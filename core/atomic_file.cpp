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

AtomicFile::AtomicFile(std::string path, Sync sync) : path_(std::move(path)), sync_(sync) {
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
  // The data reaches the disk before the rename can: otherwise a crash could leave the new name
  // pointing at a file whose blocks were never written.
  int e = 0;
  if (sync_ == Sync::durable && ::fsync(fd_) != 0) e = errno;
  if (::close(fd_) != 0 && e == 0) e = errno;  // a delayed write error (NFS, quota) shows here
  fd_ = -1;
  if (e != 0) {
    std::remove(tmp_.c_str());
    throw Error(str("writing ", tmp_, " failed (", std::strerror(e), "; disk full?)"));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    e = errno;
    std::remove(tmp_.c_str());
    throw Error(str("cannot rename ", tmp_, " to ", path_, " (", std::strerror(e), ")"));
  }
  if (sync_ == Sync::durable) sync_directory();
}

// The rename itself is an entry of the directory: syncing the directory makes it durable.
// Filesystems that cannot sync a directory (EINVAL) already keep renames durable.
void AtomicFile::sync_directory() const {
  const size_t slash = path_.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  MINIMA_CHECK(fd >= 0, "cannot open the directory ", dir, " of ", path_, " to sync it (", std::strerror(errno), ")");
  const bool synced = ::fsync(fd) == 0 || errno == EINVAL;
  const int e = errno;
  ::close(fd);
  MINIMA_CHECK(synced, "syncing the directory ", dir, " after writing ", path_, " failed (", std::strerror(e), ")");
}

}  // namespace minima
