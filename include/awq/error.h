// awq::Error: the exception type the library throws for bad input or failed I/O, and its kinds.
// Contract: the message names the file, the tensor (when there is one) and what was expected,
// so the command can print it as one line and exit 1. A caller that must tell kinds apart catches
// the subclass by type; the message text is for people, never matched by code.
#pragma once
#include <stdexcept>
#include <string>

namespace awq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Well-formed input that this build recognises but does not handle: a layout variant it does not
// read (Marlin tiles, .pt pickles, a multi-rank TensorRT-LLM export), a quant method it does not know.
class Unsupported : public Error {
 public:
  using Error::Error;
};

// The quantization config names one layout and the tensors are laid out as another. Format
// detection stops here instead of trying further layouts.
class FormatConflict : public Error {
 public:
  using Error::Error;
};

// A module that the target layout cannot store as it is (a zero point or scale outside what the
// layout encodes, act-order in a layout without g_idx, a pre_quant_scale, bits != 4). `convert`
// fails with it, or re-quantizes the module when --requantize allows.
class NotRepresentable : public Error {
 public:
  using Error::Error;
};

// Builds "FILE: TENSOR: what" (empty parts are skipped).
std::string where(const std::string& file, const std::string& tensor, const std::string& what);

[[noreturn]] void fail(const std::string& file, const std::string& tensor, const std::string& what);

}  // namespace awq
