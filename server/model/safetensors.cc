#include "server/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/kernels/bf16.h"
#include "server/util/status_macros.h"

namespace mcserve::model {
namespace {

using Json = nlohmann::json;
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::StatusOr<StDtype> ParseDtype(const std::string& s) {
  if (s == "F32") return StDtype::kF32;
  if (s == "BF16") return StDtype::kBF16;
  if (s == "F16") return StDtype::kF16;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype ", s, " (want F32, BF16 or F16)"));
}

// Parses one header entry into `t`, checking it against the data size.
absl::Status ParseEntry(const Json& e, const uint8_t* data, uint64_t data_size, StTensor& t) {
  if (!e.is_object()) return absl::InvalidArgumentError("entry is not an object");
  auto dt = e.find("dtype");
  auto sh = e.find("shape");
  auto off = e.find("data_offsets");
  if (dt == e.end() || !dt->is_string()) return absl::InvalidArgumentError("missing dtype");
  if (sh == e.end() || !sh->is_array()) return absl::InvalidArgumentError("missing shape");
  if (off == e.end() || !off->is_array() || off->size() != 2) {
    return absl::InvalidArgumentError("missing data_offsets [begin, end]");
  }
  ASSIGN_OR_RETURN(t.dtype, ParseDtype(dt->get<std::string>()));
  uint64_t numel = 1;
  for (const Json& d : *sh) {
    if (!d.is_number_unsigned()) return absl::InvalidArgumentError("shape must hold integers >= 0");
    const uint64_t v = d.get<uint64_t>();
    if (v > (1ull << 40) || (v != 0 && numel > (1ull << 40) / v)) {
      return absl::InvalidArgumentError("shape too large");
    }
    numel *= v;
    t.shape.push_back(static_cast<int64_t>(v));
  }
  if (!(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
    return absl::InvalidArgumentError("data_offsets must be integers >= 0");
  }
  const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  if (begin > end) return absl::InvalidArgumentError("data_offsets begin > end");
  if (end > data_size) {
    return absl::InvalidArgumentError(absl::StrCat("data [", begin, ", ", end,
                                                   ") lies past the end of the data (", data_size,
                                                   " bytes): file truncated?"));
  }
  if (end - begin != numel * StDtypeSize(t.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "holds ", end - begin, " bytes but shape and dtype need ", numel * StDtypeSize(t.dtype)));
  }
  t.data = data + begin;
  t.nbytes = end - begin;
  return absl::OkStatus();
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

uint16_t FloatToHalf(float f) {
  // Round to nearest even through the hardware-independent path.
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  x &= 0x7fffffff;
  if (x > 0x7f800000) return static_cast<uint16_t>(sign | 0x7e00);
  if (x >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
  if (x < 0x38800000) {                                              // subnormal or zero
    float a;
    std::memcpy(&a, &x, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
  }
  const uint32_t lsb = (x >> 13) & 1;
  x += 0xfff + lsb;
  return static_cast<uint16_t>(sign | ((x - 0x38000000) >> 13));
}

}  // namespace

absl::string_view StDtypeName(StDtype d) {
  switch (d) {
    case StDtype::kF32:
      return "F32";
    case StDtype::kBF16:
      return "BF16";
    case StDtype::kF16:
      return "F16";
  }
  return "?";
}

size_t StDtypeSize(StDtype d) { return d == StDtype::kF32 ? 4 : 2; }

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot stat ", path));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Bad(path,
               absl::StrCat("truncated: ", size, " bytes, too short for the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return absl::InternalError(absl::StrCat("cannot mmap ", path));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->map_ = map;
  f->map_size_ = size;

  const auto* bytes = static_cast<const uint8_t*>(map);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    return Bad(path, absl::StrCat("bad header: length ", header_len, " does not fit in a ", size,
                                  "-byte file (truncated or not safetensors?)"));
  }
  const char* hdr = reinterpret_cast<const char*>(bytes + 8);
  Json j = Json::parse(hdr, hdr + header_len, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Bad(path, "bad header: not a JSON object");
  }
  const uint8_t* data = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  for (const auto& [name, entry] : j.items()) {
    if (name == "__metadata__") continue;
    StTensor t;
    absl::Status s = ParseEntry(entry, data, data_size, t);
    if (!s.ok()) return Bad(path, absl::StrCat("tensor '", name, "': ", s.message()));
    f->tensors_.emplace(name, std::move(t));
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

std::vector<float> StToFloat(const StTensor& t) {
  const size_t n = t.nbytes / StDtypeSize(t.dtype);
  std::vector<float> out(n);
  if (t.dtype == StDtype::kF32) {
    std::memcpy(out.data(), t.data, t.nbytes);
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, t.data + 2 * i, 2);
    out[i] = t.dtype == StDtype::kBF16 ? kernels::Bf16ToFloat(h) : HalfToFloat(h);
  }
  return out;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<StWriteTensor>& tensors) {
  Json header = Json::object();
  uint64_t offset = 0;
  for (const StWriteTensor& t : tensors) {
    const uint64_t nbytes = t.values.size() * StDtypeSize(t.dtype);
    header[t.name] = {{"dtype", StDtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // align data to 8 bytes
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path));
  const uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const StWriteTensor& t : tensors) {
    if (t.dtype == StDtype::kF32) {
      out.write(reinterpret_cast<const char*>(t.values.data()),
                static_cast<std::streamsize>(t.values.size() * 4));
      continue;
    }
    std::vector<uint16_t> half(t.values.size());
    for (size_t i = 0; i < half.size(); ++i) {
      half[i] =
          t.dtype == StDtype::kBF16 ? kernels::FloatToBf16(t.values[i]) : FloatToHalf(t.values[i]);
    }
    out.write(reinterpret_cast<const char*>(half.data()),
              static_cast<std::streamsize>(half.size() * 2));
  }
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("short write to ", path));
  return absl::OkStatus();
}

void ReleasePages(const StTensor& t) {
  if (t.data == nullptr || t.nbytes == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(t.data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(t.data) + t.nbytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace mcserve::model
