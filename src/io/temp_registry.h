// Registry of the live temporary output directories of this process, removed on SIGINT, SIGTERM
// and SIGHUP before the signal takes its (default) effect. Used by OutputDir only.
#pragma once
#include <string>

namespace awq::temp_registry {

// Registers `path` (absolute) before it is created; returns its slot. Installs the signal handlers
// on first use (not over a signal the process ignores, e.g. SIGINT of a background job). Throws
// awq::Error when every slot is taken or the path is too long.
int add(const std::string& path);
// Marks a slot as mid-rename: the handler leaves it alone (the path may be the new output).
// When a handler is already removing it, waits for the signal to end the process.
void begin_commit(int slot);
// After the rename: the path now holds only what is to be removed (the old tree, or nothing).
void end_commit(int slot);
// Forgets a slot once its directory is gone. If the handler is cleaning it, waits for the signal.
void remove(int slot);

}  // namespace awq::temp_registry
