// File-system helpers: atomic writes and all-or-nothing output directories.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace awq {

// Writes `content` to `path` atomically: a temporary beside it (temp_file_for), fsync, then
// publish_file (replace: whatever is at `path` is replaced; otherwise an existing `path` is refused
// at the rename itself). The temporary is removed on failure and on SIGINT/SIGTERM/SIGHUP.
void write_file_atomic(const std::string& path, const std::string& content, bool replace = true, unsigned mode = 0644);
// Copies a file atomically (temp + fsync + rename).
void copy_file_atomic(const std::string& from, const std::string& to);
void fsync_dir(const std::string& dir);

// The temporary a single-file writer uses for `path`: ".<name>.tmp-<pid>" in the same directory
// (so the final rename never crosses filesystems). Before creating it, the writer calls
// remove_stale_file_temporaries(path).
std::string temp_file_for(const std::string& path);
// Removes the temporaries ".<name>.tmp-<pid>" of `path` left by runs killed with -9: only those
// whose pid names no process at all (a live process's, whatever it runs, is never touched), and
// nothing else in the directory.
void remove_stale_file_temporaries(const std::string& path);
// Renames the finished temporary `tmp` to `path`. replace: rename(2). Otherwise the rename refuses
// an existing `path` atomically (renameat2 RENAME_NOREPLACE; link + unlink where the filesystem
// refuses that flag) with an awq::Error naming `path` ("exists ... use --force"). Errors name the
// user's path, the temporary in parentheses; the temporary is left for the caller to remove.
void publish_file(const std::string& tmp, const std::string& path, bool replace);

// A single output file (`--html`, `--logits-out`, `convert --to gguf -o`): refuses, before any
// work, a path that is or overlaps an input (refuse_output_overlapping_inputs, --force or not), a
// directory, a path whose directory is missing, and an existing file unless `force`. `option`
// names the flag in messages ("--html"). Its writer then publishes with replace = force, so a file
// created meanwhile is not replaced either.
void check_output_file(const std::string& path, bool force, const std::vector<std::string>& inputs, const std::string& option);

// The path a user knows for `path`: a path inside an OutputDir's temporary
// "<parent>/.<name>.awq-tmp-<pid>/<rest>" is "<parent>/<name>/<rest>", a single-file temporary
// "<dir>/.<name>.tmp-<pid>" is "<dir>/<name>"; anything else is returned as it is.
std::string user_visible_path(const std::string& path);
// "USER_PATH" or "USER_PATH (temporary PATH)" when they differ: how write errors name a file.
std::string output_path_for_errors(const std::string& path);

// Refuses (awq::Error naming both paths) an output directory that would destroy or write into an
// input: OUT_DIR resolving to an input, to a directory above one (`-o ..`), or to a place inside
// one (`-o MODEL/sub`). Paths are compared resolved (std::filesystem::weakly_canonical: symlinks,
// `..`), and the direct entries of an input directory are resolved too, so a model whose shards
// are symlinks (a Hugging Face cache snapshot) is protected where the bytes really live.
// --force does not lift this. Every command that writes calls it (OutputDir does, first).
void refuse_output_overlapping_inputs(const std::string& out_dir, const std::vector<std::string>& inputs);

// Where a resumable command keeps its saved progress for OUT_DIR: "<parent>/<name>.awq-progress/"
// (reserved for `quantize`). It is not a temporary: no cleanup removes it.
std::filesystem::path progress_dir_for(const std::string& out_dir);

// An output directory that appears only complete. The work happens in a hidden temporary sibling
// ("<parent>/.<name>.awq-tmp-<pid>"); commit() renames it into place.
// - Without `force`, commit() never replaces a non-empty OUT_DIR, decided at the rename itself
//   (renameat2 RENAME_NOREPLACE): of two runs writing the same OUT_DIR exactly one wins, the other
//   gets an awq::Error and leaves nothing. An empty existing OUT_DIR may be replaced.
// - With `force`, an existing OUT_DIR is swapped with the new one atomically (RENAME_EXCHANGE)
//   and the old tree removed afterwards: at every instant OUT_DIR is the old or the new one.
// - Destroyed without commit(), or the process stopped by SIGINT/SIGTERM/SIGHUP, the temporary
//   is removed and OUT_DIR is untouched (signals: the default action is restored and the signal
//   re-raised after cleanup, so the exit status still names it).
// - Temporaries of runs killed with -9 are removed by the next OutputDir in the same parent
//   (see remove_stale_temporaries in output_dir.cc). Nothing else stays beside OUT_DIR.
// The constructor refuses an OUT_DIR overlapping any of `inputs` (refuse_output_overlapping_inputs),
// a non-directory, a missing parent, and a non-empty OUT_DIR without `force`.
// Test hooks (environment, read only in output_dir.cc): AWQ_TEST_NO_RENAMEAT2 takes the fallback
// for filesystems without renameat2 flags; AWQ_TEST_COMMIT_GATE=PATH holds commit() until PATH
// exists (after creating PATH.<pid>.ready), to race two processes deterministically.
class OutputDir {
 public:
  OutputDir(const std::string& out_dir, bool force, const std::vector<std::string>& inputs);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  const std::filesystem::path& tmp() const { return tmp_; }
  std::string file(const std::string& name) const { return (tmp_ / name).string(); }
  void commit();

 private:
  void place_new();
  void replace_existing();
  std::filesystem::path out_, tmp_;
  bool force_, committed_ = false;
  int slot_ = -1;  // this temporary's entry in the signal-cleanup registry
};

}  // namespace awq
