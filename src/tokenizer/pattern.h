// The {"String": s} / {"Regex": r} pattern objects of Replace and Split.
#pragma once
#include <memory>

#include "tokenizer/json_fields.h"
#include "tokenizer/regex.h"

namespace awq::tok {

std::unique_ptr<Regex> parse_pattern(const json& j, const JsonPath& at);

}  // namespace awq::tok
