// tokenizer.json post-processors for one sequence: TemplateProcessing ("single" template),
// ByteLevel (ids unchanged), RobertaProcessing, BertProcessing, Sequence.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "tokenizer/json_fields.h"

namespace awq::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // The ids of one encoded sequence with the special tokens added.
  virtual std::vector<int32_t> process(std::vector<int32_t> ids) const = 0;
  // The first id added before the sequence, if any (the BOS a template adds).
  virtual std::optional<int32_t> leading_special() const = 0;
};

// Puts `before` ids ahead of the sequence and `after` ids behind it.
std::unique_ptr<PostProcessor> make_affix_processor(std::vector<int32_t> before, std::vector<int32_t> after);

// The post-processor a tokenizer.json "post_processor" value describes; null for JSON null.
std::unique_ptr<PostProcessor> parse_post_processor(const json& j, const JsonPath& at);

}  // namespace awq::tok
