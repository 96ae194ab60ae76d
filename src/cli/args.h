// Validators for option values taken by several subcommands. A bad value is a usage error: CLI11
// reports it while parsing, and main() exits with status 2 (see README, "Exit statuses").
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "awq/error.h"

namespace awq::cli {

// A value the command line got wrong that only the action can judge (e.g. bench's --shape):
// main() reports it like a parse error, exit status 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// JSON text for stdout: bytes that are not UTF-8 (a path with such a name) are written as U+FFFD
// instead of failing the whole command after its work is done.
template <class Json>
std::string json_text(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

// The bytes of a text file the user names (`what`: "the text file", "the calibration text"):
// awq::Error naming it when it cannot be opened, is a directory (which reads as empty) or fails.
std::string read_text_file(const std::string& path, const std::string& what);

// Runs `action`. When `json` is set and it throws an awq::Error (a usage error included), first
// prints {"error": "<message>"} on stdout, so a reader of --json output always gets a JSON
// document, then rethrows: main() prints the line on stderr and exits 1 (2 for usage errors).
int with_json_error(bool json, const std::function<int()>& action);

// f16 | bf16 | f32 and their long spellings, any case (awq::parse_float_dtype_cli).
CLI::Validator float_dtype_arg();
// A finite number in [lo, hi] (CLI::Range lets NaN through: every comparison with it is false).
CLI::Validator finite_range_arg(double lo, double hi);
// An unsigned 64-bit decimal integer, 0 to 18446744073709551615, written in digits only (CLI11
// alone wraps -1 and saturates 2^64 silently).
CLI::Validator uint64_arg();
// A file name: not empty (CLI11 would take "" as "option not given" and silently write nothing).
CLI::Validator file_name_arg();
// A byte count such as 5GB, 500MB, 2GiB (awq::parse_size): positive and not overflowing.
CLI::Validator size_arg();

}  // namespace awq::cli
