// A progress bar with ETA on stderr; silent when stderr is not a terminal or when disabled.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace awq {

class Progress {
 public:
  // unit: empty, the counts are bytes ("1.20 MB/3.00 MB"); else plain counts of that unit
  // ("3/10 windows").
  Progress(std::string label, uint64_t total, bool enabled = true, std::string unit = "");
  ~Progress();
  void advance(uint64_t n);
  void finish();

 private:
  void draw(bool final);
  std::string label_, unit_;
  uint64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

// "1.23 GB" style sizes (decimal units) and "--max-shard-size" parsing ("5GB", "500MB", "1.5GiB", bytes).
std::string human_bytes(uint64_t n);
uint64_t parse_size(const std::string& s);

}  // namespace awq
