// core/atomic_file.h: files written so that a crash, a kill or a full disk never leaves one torn.
// The bytes go to a temporary file beside the target (named by process and call, so two writers
// never share it), which is closed and then renamed over the target: the target holds the old
// bytes or the new ones, never a partial file. Until commit() the target is untouched, and a file
// that is never committed (an exception on the way) is removed.
// A durable file (Sync::durable: checkpoints and weights) is also flushed to the disk before the
// rename, and its directory after it, so it survives a power cut or an OS crash too, on any
// filesystem. Other files (metrics rewritten every epoch, run files) skip the two syncs, which cost
// milliseconds each; they still never tear, and ext4's default mount (auto_da_alloc) writes a
// file's data before a rename that replaces another file.
// Checkpoints, run files and metrics go through it (write_file_atomic in json.h for text).
#pragma once
#include <cstddef>
#include <string>

namespace minima {

class AtomicFile {
 public:
  enum class Sync { none, durable };
  // Creates the temporary file; throws when it cannot.
  explicit AtomicFile(std::string path, Sync sync = Sync::none);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // not committed: the temporary file is closed and removed

  void write(const void* data, size_t n);  // throws on a short write (disk full), naming the file
  void commit();                           // close (durable: sync first) and rename over the target

  const std::string& temp_path() const { return tmp_; }

 private:
  void sync_directory() const;

  std::string path_, tmp_;
  Sync sync_;
  int fd_ = -1;
};

}  // namespace minima
