// tests/core/exp_hard_cases.h: the 128 floats t in (-104, 89) whose exponentials lie closest to
// a float rounding boundary (the midpoint between two neighbouring floats), hardest first: for the
// first, exp(t) is 2^-28.7 of a float ulp from the midpoint, for the last 2^-22.9. Found once by
// running expl (64-bit long double) over every float in the range. An exp that is a little less
// accurate than double rounds some of these to the wrong float, while random inputs almost
// never come this close: they are the inputs that tell a correctly rounded exp from a nearly
// correct one.
#pragma once

namespace minima::testing {

inline constexpr float kExpHardCases[128] = {
    -0x1.d2259ap+3f,  -0x1.e1dbe2p-8f,  -0x1.65cf3p+6f,   0x1.fdff02p-17f,  -0x1.c1c4b8p-10f, -0x1p-25f,
    0x1.8d7cb6p-12f,  0x1.cd3982p-14f,  0x1.747de2p-15f,  0x1.344e9cp-5f,   0x1.62b666p+1f,   0x1.036492p+1f,
    0x1.cb763ap-12f,  0x1.fbff82p-18f,  0x1.112856p+6f,   0x1.f7ffc2p-19f,  0x1.efffe2p-20f,  0x1.dffff2p-21f,
    0x1.bffffap-22f,  0x1.7ffffep-23f,  0x1.fffffep-25f,  0x1p-24f,         -0x1.548c34p-7f,  0x1.cce332p+0f,
    -0x1.f02a66p+1f,  0x1.5b3c52p-14f,  -0x1.6e1ddp-8f,   0x1.97f0f6p+4f,   -0x1.7acc62p+3f,  0x1.69a056p+1f,
    0x1.2e3554p-6f,   0x1.f79a1p-11f,   0x1.5ffc5cp-6f,   -0x1.71e81ep-6f,  0x1.c1141cp-7f,   -0x1.7f4296p+0f,
    0x1.bae196p+2f,   0x1.31e68cp-9f,   -0x1.e981d4p-16f, -0x1.93813ep-16f, 0x1.b78498p-1f,   -0x1.03d5bep+0f,
    -0x1.fffffep-26f, 0x1.192e5cp-8f,   -0x1.edfb24p-1f,  -0x1.e4854cp-11f, 0x1.f12cdcp+3f,   0x1.c87cd2p-15f,
    0x1.060e1ep+6f,   -0x1.6727d6p-4f,  0x1.fffffcp-25f,  -0x1.64fbb2p+6f,  -0x1.b3f43cp+3f,  -0x1.705ce4p+1f,
    -0x1.687f6ep+6f,  0x1.f613acp-4f,   0x1.e021bcp-5f,   -0x1.c1cd9ap-2f,  -0x1.6a004p-18f,  -0x1.2c0016p-19f,
    -0x1.a80016p-20f, -0x1.000002p-25f, -0x1.800002p-24f, -0x1.400002p-23f, -0x1.600004p-22f, 0x1.fcfe06p-16f,
    -0x1.6dc968p+5f,  -0x1.c02f76p-6f,  -0x1.cf6ab2p-3f,  0x1.172096p+2f,   0x1.48e1c4p+2f,   0x1.01753ap-9f,
    0x1.f5ea7ap-11f,  -0x1.e251d6p-4f,  0x1.eeffd8p-3f,   0x1.fefe02p-16f,  -0x1.39771cp-8f,  -0x1.56f9c8p+0f,
    -0x1.da035ep-2f,  -0x1.fffffcp-26f, -0x1.8p-24f,      0x1.7ff4p-11f,    -0x1.35f0d4p-8f,  -0x1.5ce26ap+6f,
    0x1.8053eep-11f,  -0x1.1b31eap-8f,  -0x1.f9085ap+0f,  0x1.0885a4p-6f,   0x1.000002p-24f,  0x1.fffffap-25f,
    0x1.15298ap+6f,   -0x1.66b396p+1f,  -0x1.beccfap-3f,  0x1.43ad06p+0f,   -0x1.2af904p-1f,  0x1.eef802p+4f,
    -0x1.a4af32p-11f, -0x1.ba156p-10f,  0x1.707136p-6f,   -0x1.b09b6cp-13f, -0x1.fffffap-26f, 0x1.3ffffcp-22f,
    0x1.7ffffcp-23f,  0x1.fffff8p-25f,  0x1.5ffff8p-21f,  0x1.4ffff2p-20f,  0x1.a7ffd4p-19f,  0x1.2bffd4p-18f,
    0x1.6438b6p-8f,   0x1.fc7c0ep-15f,  0x1.69ff8p-17f,   0x1.bb899p-7f,    -0x1.b2005cp-18f, -0x1.38000cp-20f,
    -0x1.90000ap-21f, -0x1.000004p-25f, -0x1.c00004p-23f, 0x1.7396a6p+1f,   0x1.3f024ap-10f,  -0x1.2c77b6p+4f,
    0x1.2dc3fp-6f,    -0x1.4fad84p-4f,  -0x1.e2a52p-3f,   -0x1.5768a8p+6f,  -0x1.ba246cp+2f,  0x1.36d932p+1f,
    -0x1.6e420cp-15f, -0x1.8f7d06p-3f,
};

}  // namespace minima::testing
