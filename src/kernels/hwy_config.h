// Highway target selection for the kernel translation units. Include before any hwy header.
// Compiled targets: AVX3_DL (AVX-512 + VNNI/VBMI2: Ice Lake+, Zen 4+), AVX3 (AVX-512 F/BW/DQ/VL),
// AVX2 (+FMA, F16C), SSE4, and the portable fallback (HWY_SCALAR with g++ 12, EMU128 elsewhere).
// SSSE3 is dropped: SSE4 covers the 128-bit x86 case.
#pragma once
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS HWY_SSSE3
#endif
