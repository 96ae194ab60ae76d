// CPUID and XGETBV, read once for the bf16 and AMX paths (cpuid.h).
#include <cpuid.h>

#include <string>

#include "kernels/cpuid.h"

namespace awq::kernels {

CpuidFacts read_cpuid() {
  CpuidFacts f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.leaf1 = true;
  f.osxsave = (c >> 27) & 1u;
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.b7 = b;
    f.d7 = d;
    if (a >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.a71 = a;
    }
  }
  if (f.osxsave) {
    unsigned lo = 0, hi = 0;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    f.xcr0 = lo;
  }
  return f;
}

void need_feature(bool have, const char* name, std::string* miss) {
  if (!have) *miss += miss->empty() ? std::string(name) : std::string(", ") + name;
}

void need_avx512_fdqbwvl(const CpuidFacts& f, std::string* miss) {
  need_feature((f.b7 >> 16) & 1u, "avx512f", miss);
  need_feature((f.b7 >> 17) & 1u, "avx512dq", miss);
  need_feature((f.b7 >> 30) & 1u, "avx512bw", miss);
  need_feature((f.b7 >> 31) & 1u, "avx512vl", miss);
}

}  // namespace awq::kernels
