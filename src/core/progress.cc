#include "awq/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "awq/error.h"

namespace awq {

Progress::Progress(std::string label, uint64_t total, bool enabled, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled && ::isatty(2)) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::advance(uint64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ > std::chrono::milliseconds(100)) {
    last_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  if (!enabled_) return;
  const double frac = total_ ? double(done_) / double(total_) : 1.0;
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = frac > 0 ? el * (1 - frac) / frac : 0;
  const int width = 30, fill = int(std::lround(frac * width));
  std::string bar(size_t(fill), '#');
  bar.resize(width, '.');
  const std::string counts = unit_.empty() ? human_bytes(done_) + "/" + human_bytes(total_)
                                           : std::to_string(done_) + "/" + std::to_string(total_) + " " + unit_;
  std::fprintf(stderr, "\r%s [%s] %5.1f%% %s  %.0fs elapsed, ETA %.0fs ", label_.c_str(), bar.c_str(), frac * 100,
               counts.c_str(), el, eta);
  if (final) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = double(n);
  int u = 0;
  while (v >= 1000 && u < 4) { v /= 1000; ++u; }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

uint64_t parse_size(const std::string& s) {
  size_t pos = 0;
  double v;
  try {
    v = std::stod(s, &pos);
  } catch (const std::out_of_range&) {
    throw Error("size \"" + s + "\" is too large (it overflows a 64-bit byte count)");
  } catch (...) {
    throw Error("invalid size \"" + s + "\" (examples: 5GB, 500MB, 2GiB, 1000000)");
  }
  std::string unit = s.substr(pos);
  for (auto& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  double mul;
  if (unit.empty() || unit == "B") mul = 1;
  else if (unit == "KB") mul = 1e3;
  else if (unit == "MB") mul = 1e6;
  else if (unit == "GB") mul = 1e9;
  else if (unit == "TB") mul = 1e12;
  else if (unit == "KIB") mul = 1024.0;
  else if (unit == "MIB") mul = 1024.0 * 1024;
  else if (unit == "GIB") mul = 1024.0 * 1024 * 1024;
  else throw Error("invalid size unit in \"" + s + "\" (use B, KB, MB, GB, TB, KiB, MiB, GiB)");
  if (std::isnan(v)) throw Error("invalid size \"" + s + "\" (examples: 5GB, 500MB, 2GiB, 1000000)");
  if (!(v > 0)) throw Error("size \"" + s + "\" must be positive");
  // 2^63: beyond it the byte count overflows (and no disk holds it).
  if (v * mul >= 9223372036854775808.0) throw Error("size \"" + s + "\" is too large (it overflows a 64-bit byte count)");
  if (v * mul < 1) throw Error("size \"" + s + "\" is less than one byte");
  return uint64_t(v * mul);
}

}  // namespace awq
