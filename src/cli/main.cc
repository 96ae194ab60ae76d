// awq: one command, a subcommand per job. Errors: one line on stderr, exit status 1.
#include <cstdio>
#include <map>

#include "awq/error.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"awq: read, check, convert and run 4-bit AWQ-style LLM checkpoints"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "awq 0.1.0");
  std::map<CLI::App*, awq::cli::Action> actions;
  auto reg = [&](awq::cli::Action (*add)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    awq::cli::Action a = add(app);
    actions[app.get_subcommands({})[before]] = std::move(a);
  };
  reg(awq::cli::add_inspect);
  reg(awq::cli::add_dequantize);
  reg(awq::cli::add_bench);
  reg(awq::cli::add_check);
  reg(awq::cli::add_repair);
  reg(awq::cli::add_convert);
  reg(awq::cli::add_compare);
  reg(awq::cli::add_tokenize);
  reg(awq::cli::add_run);
  reg(awq::cli::add_keygen);
  reg(awq::cli::add_encrypt);
  reg(awq::cli::add_decrypt);
  // Every subcommand that reads a checkpoint opens an encrypted one given its key.
  for (const char* name : {"inspect", "check", "dequantize", "convert", "repair", "compare", "run", "eval", "bench"})
    for (CLI::App* sub : app.get_subcommands({}))
      if (sub->get_name() == name) awq::cli::add_key_file_option(sub);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    awq::cli::apply_key_file();
    for (auto& [sub, act] : actions)
      if (sub->parsed()) return act();
  } catch (const awq::Error& e) {
    std::fprintf(stderr, "awq: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "awq: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
