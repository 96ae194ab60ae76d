#include "cli/args.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/progress.h"

namespace awq::cli {

int with_json_error(bool json, const std::function<int()>& action) {
  try {
    return action();
  } catch (const Error& e) {
    if (json) {
      std::printf("%s\n", json_text(nlohmann::json{{"error", e.what()}}, 2).c_str());
      std::fflush(stdout);
    }
    throw;
  }
}

CLI::Validator float_dtype_arg() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return parse_float_dtype_cli(s) ? std::string() : "must be f16, bf16 or f32 (any case), not \"" + s + "\"";
      },
      "DTYPE");
}

std::string read_text_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, not " + what);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open " + what);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw Error(path + ": reading " + what + " failed");
  return ss.str();
}

CLI::Validator uint64_arg() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        uint64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
        if (!s.empty() && ec == std::errc() && end == s.data() + s.size()) return {};
        return "'" + s + "' is not an integer from 0 to 18446744073709551615";
      },
      "UINT64", "uint64");
}

CLI::Validator file_name_arg() {
  return CLI::Validator(
      [](std::string& s) -> std::string { return s.empty() ? "an empty file name: name the FILE to write" : ""; }, "FILE",
      "file_name");
}

CLI::Validator finite_range_arg(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        size_t used = 0;
        double v = 0;
        try {
          v = std::stod(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == s.size() && used > 0 && std::isfinite(v) && v >= lo && v <= hi) return {};
        char range[64];
        std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
        return "must be a number in " + std::string(range) + ", not \"" + s + "\"";
      },
      "NUMBER");
}

CLI::Validator size_arg() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        try {
          parse_size(s);
          return {};
        } catch (const Error& e) {
          return e.what();
        }
      },
      "SIZE");
}

}  // namespace awq::cli
