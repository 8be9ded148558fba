// libFuzzer target: a model.safetensors file as the loader opens it
// (SafetensorsFile::Open maps the file and parses its header and offsets).
// The input is written to an in-memory file; any input must give the tensor
// index or a status.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "server/model/safetensors.h"

volatile uint8_t sink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("safetensors", 0);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  auto f = mcserve::model::SafetensorsFile::Open("/proc/self/fd/" + std::to_string(fd));
  if (f.ok()) {
    for (const auto& [name, t] : (*f)->tensors()) {
      // Touch the first and last byte each tensor claims: the offsets must be in the file.
      if (t.nbytes > 0) sink = static_cast<uint8_t>(t.data[0] ^ t.data[t.nbytes - 1]);
    }
  }
  close(fd);
  return 0;
}
