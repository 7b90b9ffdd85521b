// data/image_io.h: decoding of PNG/JPEG files (stb_image) into uint8 CHW pixels, with an optional
// center-square crop and resize (stb_image_resize), and a pool of host threads that decodes a
// list of files into one [N, 3, S, S] tensor. Available when minima is built with stb
// (MINIMA_HAS_STB); otherwise the functions throw saying so.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace minima::data {

bool have_image_decoder();

// Decodes one image file into 3-channel CHW pixels at out[0 .. 3*size*size).
// exact_size: the image must already be size x size (an error names the file and both sizes);
// otherwise the largest centered square is cropped and resized to size x size.
void decode_image_file(const std::string& path, int64_t size, bool exact_size, uint8_t* out);

// Decodes every file with `threads` host threads (0: all cores) into uint8 [N, 3, size, size].
// The first failure stops the pool and is rethrown; `what` labels progress lines on stderr.
Tensor decode_images(const std::vector<std::string>& paths, int64_t size, bool exact_size, int threads, bool verbose,
                     const std::string& what);

}  // namespace minima::data
