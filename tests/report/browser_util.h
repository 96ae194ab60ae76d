// Renders an HTML file in headless Chromium and decodes the screenshot, so report tests can check
// that the charts actually drew (pixels of the chart colours), not only that the markup exists.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace awq::test {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
};

// Path of a Chromium binary (chromium, chromium-browser, google-chrome), or nullopt.
std::optional<std::string> find_chromium();
// Screenshot of `html_file` at width x height; throws std::runtime_error when Chromium fails.
Image screenshot(const std::string& chromium, const std::string& html_file, const std::string& png_out, int width,
                 int height);
// Decodes an 8-bit non-interlaced RGB or RGBA PNG (what Chromium writes); throws on anything else.
Image decode_png(const std::string& bytes);
// Pixels within `tol` of the colour (r, g, b) in every channel.
size_t count_colour(const Image& img, uint8_t r, uint8_t g, uint8_t b, int tol = 8);

}  // namespace awq::test
