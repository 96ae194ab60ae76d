// CPUID / XGETBV facts for the paths that check the CPU themselves (bf16, AMX): Highway 1.0.3 has no
// AVX512_BF16 or AMX targets. Read in one place (cpuid.cc).
#pragma once
#include <cstdint>
#include <string>

namespace awq::kernels {

struct CpuidFacts {
  bool leaf1 = false;                // CPUID leaf 1 answered
  bool osxsave = false;              // leaf 1 ECX bit 27: XGETBV usable
  uint32_t b7 = 0, d7 = 0, a71 = 0;  // leaf 7 subleaf 0 EBX / EDX, subleaf 1 EAX (0 when absent)
  uint32_t xcr0 = 0;                 // XCR0's low word (0 without OSXSAVE)
};
CpuidFacts read_cpuid();
// Appends name to *miss ("a", then ", b") when !have.
void need_feature(bool have, const char* name, std::string* miss);
// need_feature for AVX-512 F, DQ, BW and VL, in that order.
void need_avx512_fdqbwvl(const CpuidFacts& f, std::string* miss);

}  // namespace awq::kernels
