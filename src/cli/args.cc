#include "cli/args.h"

#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/progress.h"

namespace awq::cli {

CLI::Validator float_dtype_arg() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return parse_float_dtype_cli(s) ? std::string() : "must be f16, bf16 or f32 (any case), not \"" + s + "\"";
      },
      "DTYPE");
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
