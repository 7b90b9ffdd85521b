// core/checksum.h: a fast 64-bit checksum of bytes, for files that must notice damage: the
// decoded-pixel caches and the safetensors files minima writes (weights and checkpoints).
//
// Not a cryptographic hash: it catches bytes changed by a disk, a copy or a hand, not an adversary.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace minima {

// Four interleaved lanes over 8-byte words, each step (xor a word, multiply by an odd constant,
// xor-shift) a bijection of the lane's state, so any one changed word changes the result; the
// tail bytes and the length are folded in after. About 2 GB/s on one core.
uint64_t checksum64(const void* data, size_t n);

// The value as 16 lower-case hex digits, and back (false for anything else).
std::string hex64(uint64_t v);
bool parse_hex64(const std::string& s, uint64_t& v);

}  // namespace minima
