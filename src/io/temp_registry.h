// Registry of the live temporary outputs of this process (OutputDir's directories, the single-file
// writers' `.<name>.tmp-<pid>` files), removed on SIGINT, SIGTERM and SIGHUP before the signal
// takes its (default) effect.
#pragma once
#include <string>

namespace awq::temp_registry {

// Registers `path` (absolute) before it is created; returns its slot. Installs the signal handlers
// on first use (not over a signal the process ignores, e.g. SIGINT of a background job). Throws
// awq::Error when every slot is taken or the path is too long.
int add(const std::string& path);
// add() for a writer's temporary file, best effort: -1 (not registered) when no slot is free.
// Every other function ignores slot -1.
int try_add(const std::string& path) noexcept;
// Marks a slot as mid-rename: the handler leaves it alone (the path may be the new output).
// When a handler is already removing it, waits for the signal to end the process.
void begin_commit(int slot);
// After the rename: the path now holds only what is to be removed (the old tree, or nothing).
void end_commit(int slot);
// Forgets a slot once its directory is gone. If the handler is cleaning it, waits for the signal.
void remove(int slot);

}  // namespace awq::temp_registry
