#include "awq/error.h"

namespace awq {

std::string where(const std::string& file, const std::string& tensor, const std::string& what) {
  std::string s;
  if (!file.empty()) s += file + ": ";
  if (!tensor.empty()) s += "tensor '" + tensor + "': ";
  s += what;
  return s;
}

void fail(const std::string& file, const std::string& tensor, const std::string& what) {
  throw Error(where(file, tensor, what));
}

}  // namespace awq
