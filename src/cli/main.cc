// awq: one command, a subcommand per job. Exit statuses (README, "Exit statuses"): 0 done; 1 the
// command ran and refused or failed (one line on stderr; `check`: errors found); 2 a usage error
// (unknown option, missing or invalid value; `check`: the check could not run); killed by SIGINT,
// SIGTERM or SIGHUP after removing its temporary output (the shell shows 128 + the signal number).
#include <csignal>
#include <cstdio>
#include <map>
#include <new>
#include <string>

#include "awq/error.h"
#include "cli/args.h"
#include "cli/commands.h"

namespace {

std::string command_line(int argc, char** argv) {
  std::string s = "awq";
  for (int i = 1; i < argc; ++i) s += std::string(" ") + argv[i];
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  // A file-size limit (`ulimit -f`) must end in an error we clean up after, not in SIGXFSZ's default
  // (terminate, leaving the temporary output behind): ignored, the write fails with EFBIG instead.
  std::signal(SIGXFSZ, SIG_IGN);
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
  reg(awq::cli::add_quantize);
  reg(awq::cli::add_eval);
  reg(awq::cli::add_keygen);
  reg(awq::cli::add_encrypt);
  reg(awq::cli::add_decrypt);
  // Every subcommand that reads a checkpoint opens an encrypted one given its key.
  for (const char* name : {"inspect", "check", "dequantize", "convert", "repair", "compare", "run", "eval", "bench"})
    for (CLI::App* sub : app.get_subcommands({}))
      if (sub->get_name() == name) awq::cli::add_key_file_option(sub);
  // The first word that is not an option must name a subcommand (CLI11 alone says only "A
  // subcommand is required" for a misspelt one).
  // The only options before it are --help and --version.
  if (argc == 1) {  // no subcommand: the usage and the subcommand list (CLI11 alone says only "A subcommand is required")
    std::fprintf(stderr, "awq: usage error: no subcommand given; `awq SUBCOMMAND --help` lists one's options\n\n%s", app.help().c_str());
    return 2;
  }
  if (argc > 1) {
    const std::string first = argv[1];
    std::string names;
    bool known = first == "-h" || first == "--help" || first == "--version";
    for (CLI::App* sub : app.get_subcommands({})) {
      known |= first[0] != '-' && sub->check_name(first);
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "awq: usage error: unknown %s '%s'; the subcommands are: %s\nRun with --help for more information.\n",
                   first[0] == '-' ? "option" : "subcommand", first.c_str(), names.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error (CLI11's own codes 105-115) is a usage error.
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    awq::cli::apply_key_file();
    for (auto& [sub, act] : actions)
      if (sub->parsed()) return act();
  } catch (const awq::cli::UsageError& e) {
    std::fprintf(stderr, "awq: usage error: %s\nRun with --help for more information.\n", e.what());
    return 2;
  } catch (const awq::Error& e) {
    std::fprintf(stderr, "awq: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    // Last resort: the commands that write refuse work larger than the memory available before
    // starting (awq::check_resources); this names the run that still ran out.
    std::fprintf(stderr, "awq: error: out of memory (std::bad_alloc) while running `%s`; nothing was written to the output directory\n",
                 command_line(argc, argv).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "awq: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
