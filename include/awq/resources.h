// Refusing work the machine cannot hold, before anything is written: one check used by every
// command that writes a checkpoint (dequantize, convert).
#pragma once
#include <cstdint>
#include <string>

namespace awq {

struct ResourceNeeds {
  std::string out_dir;        // where the output goes (its filesystem's free space is compared)
  uint64_t output_bytes = 0;  // total size of the files to be written
  std::string tensor;         // the module or tensor with the largest working set
  uint64_t tensor_bytes = 0;  // bytes of memory it needs at once (beyond the mmap'd input)
};

// Throws awq::Error, naming the tensor and the bytes it needs, when `tensor_bytes` exceeds the
// memory available (MemAvailable in /proc/meminfo, or the cgroup's memory.max minus its usage when
// that is lower), or when `output_bytes` exceeds the free space (statvfs f_bavail) of the
// filesystem holding out_dir (the nearest existing ancestor). A figure that cannot be read is not
// checked. Test hooks, read only here: AWQ_TEST_MEM_AVAILABLE and AWQ_TEST_DISK_FREE (bytes)
// replace the measured figures.
void check_resources(const ResourceNeeds& needs);

// Memory of one quantized module in canonical form (QuantLinear: one byte per code, f32 scales,
// i32 zero points, g_idx, pre_quant_scale, bias) of n rows, k columns and `groups` groups per row.
uint64_t quant_linear_bytes(int64_t n, int64_t k, int64_t groups);

}  // namespace awq
