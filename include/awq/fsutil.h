// File-system helpers: atomic writes and all-or-nothing output directories.
#pragma once
#include <filesystem>
#include <string>

namespace awq {

// Writes `content` to `path` atomically (temp file beside it, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& content);
// Copies a file atomically (temp + fsync + rename).
void copy_file_atomic(const std::string& from, const std::string& to);
void fsync_dir(const std::string& dir);

// An output directory that appears only complete. The work happens in a hidden temporary sibling
// ("<parent>/.<name>.awq-tmp-<pid>"); commit() renames it into place (replacing an existing
// OUT_DIR only when `force` was given, and only at that point). If the object is destroyed
// without commit(), the temporary directory is removed and OUT_DIR is untouched.
class OutputDir {
 public:
  OutputDir(const std::string& out_dir, bool force);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  const std::filesystem::path& tmp() const { return tmp_; }
  std::string file(const std::string& name) const { return (tmp_ / name).string(); }
  void commit();

 private:
  void remove_stale_temporaries() const;
  std::filesystem::path out_, tmp_;
  bool force_, committed_ = false;
};

}  // namespace awq
