#include "report/browser_util.h"

#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "test_util.h"

namespace awq::test {
namespace {

uint32_t be32(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 | uint32_t(uint8_t(s[at + 2])) << 8 |
         uint32_t(uint8_t(s[at + 3]));
}

int paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : (pb <= pc ? b : c);
}

std::string inflate_all(const std::string& z, size_t expect) {
  std::string out(expect, '\0');
  uLongf len = uLongf(expect);
  if (uncompress(reinterpret_cast<Bytef*>(out.data()), &len, reinterpret_cast<const Bytef*>(z.data()), uLong(z.size())) !=
          Z_OK ||
      len != expect)
    throw std::runtime_error("png: bad IDAT stream");
  return out;
}

}  // namespace

std::optional<std::string> find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (std::filesystem::exists(p)) return std::string(p);
  return std::nullopt;
}

Image screenshot(const std::string& chromium, const std::string& html_file, const std::string& png_out, int width,
                 int height) {
  // --no-sandbox: Chromium refuses to start as root otherwise (CI runs as root).
  const std::string cmd = "timeout 120 '" + chromium + "' --headless --no-sandbox --disable-gpu --hide-scrollbars " +
                          "--window-size=" + std::to_string(width) + "," + std::to_string(height) +
                          " --screenshot='" + png_out + "' 'file://" + std::filesystem::absolute(html_file).string() +
                          "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0 || !std::filesystem::exists(png_out))
    throw std::runtime_error("chromium failed: " + cmd);
  return decode_png(read_bytes(png_out));
}

Image decode_png(const std::string& s) {
  if (s.size() < 33 || s.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) throw std::runtime_error("png: bad signature");
  Image img;
  int channels = 0;
  std::string idat;
  for (size_t at = 8; at + 12 <= s.size();) {
    const uint32_t len = be32(s, at);
    const std::string type = s.substr(at + 4, 4);
    if (at + 12 + len > s.size()) throw std::runtime_error("png: truncated chunk");
    if (type == "IHDR") {
      img.width = int(be32(s, at + 8));
      img.height = int(be32(s, at + 12));
      const int depth = uint8_t(s[at + 16]), ctype = uint8_t(s[at + 17]), interlace = uint8_t(s[at + 20]);
      if (depth != 8 || interlace != 0 || (ctype != 2 && ctype != 6)) throw std::runtime_error("png: unsupported");
      channels = ctype == 2 ? 3 : 4;
    } else if (type == "IDAT") {
      idat += s.substr(at + 8, len);
    } else if (type == "IEND") {
      break;
    }
    at += 12 + len;
  }
  if (!channels) throw std::runtime_error("png: no IHDR");
  const size_t stride = size_t(img.width) * size_t(channels);
  const std::string raw = inflate_all(idat, (stride + 1) * size_t(img.height));
  std::vector<uint8_t> cur(stride), prev(stride, 0);
  img.rgb.resize(size_t(img.width) * size_t(img.height) * 3);
  for (int y = 0; y < img.height; ++y) {
    const uint8_t* line = reinterpret_cast<const uint8_t*>(raw.data()) + size_t(y) * (stride + 1);
    const int filter = line[0];
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= size_t(channels) ? cur[i - size_t(channels)] : 0, b = prev[i];
      const int c = i >= size_t(channels) ? prev[i - size_t(channels)] : 0;
      int pred = 0;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: pred = paeth(a, b, c); break;
        default: throw std::runtime_error("png: bad filter");
      }
      cur[i] = uint8_t(line[1 + i] + pred);
    }
    for (int x = 0; x < img.width; ++x)
      for (int ch = 0; ch < 3; ++ch)
        img.rgb[(size_t(y) * size_t(img.width) + size_t(x)) * 3 + size_t(ch)] = cur[size_t(x) * size_t(channels) + size_t(ch)];
    std::swap(cur, prev);
  }
  return img;
}

size_t count_colour(const Image& img, uint8_t r, uint8_t g, uint8_t b, int tol) {
  size_t n = 0;
  for (size_t i = 0; i + 2 < img.rgb.size(); i += 3)
    n += std::abs(img.rgb[i] - r) <= tol && std::abs(img.rgb[i + 1] - g) <= tol && std::abs(img.rgb[i + 2] - b) <= tol;
  return n;
}

}  // namespace awq::test
