#include <cstdio>

#include "awq/dequantize_model.h"
#include "awq/gguf.h"
#include "awq/inspect.h"
#include "cli/args.h"
#include "cli/commands.h"

namespace awq::cli {

Action add_inspect(CLI::App& app) {
  auto* sub = app.add_subcommand("inspect", "Describe a checkpoint: format, bits, groups, modules, tied embeddings, bytes (a dense one: dims, dtypes, parameters)");
  auto model = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("MODEL", *model, "model directory (or a .safetensors / .npz / .gguf file)")->required();
  sub->add_flag("--json", *json, "print the report as JSON");
  return [model, json]() {
    if (is_gguf_file(*model)) {
      const auto report = inspect_gguf(*model);
      if (*json) std::printf("%s\n", json_text(report, 2).c_str());
      else std::printf("%s", render_gguf_inspect_text(report).c_str());
      return 0;
    }
    ModelDir dir(*model);
    const auto report = is_dense_checkpoint(dir) ? inspect_dense_model(dir) : inspect_model(dir, *open_format(dir));
    if (*json) std::printf("%s\n", json_text(report, 2).c_str());
    else std::printf("%s", render_inspect_text(report).c_str());
    return 0;
  };
}

}  // namespace awq::cli
