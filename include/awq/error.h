// awq::Error: the one exception type the library throws for bad input or failed I/O.
// Contract: the message names the file, the tensor (when there is one) and what was expected,
// so the command can print it as one line and exit 1.
#pragma once
#include <stdexcept>
#include <string>

namespace awq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Builds "FILE: TENSOR: what" (empty parts are skipped).
std::string where(const std::string& file, const std::string& tensor, const std::string& what);

[[noreturn]] void fail(const std::string& file, const std::string& tensor, const std::string& what);

}  // namespace awq
