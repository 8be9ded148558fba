// Device memory for the CUDA kernel tests, and whether there is a device: uploaded from a host
// vector or poisoned (every byte 0xFF, a NaN in float) so a kernel that skips a write is caught.
// Aborts the test binary on CUDA errors (tests only).
#ifndef MCSERVE_TESTS_CUDA_DEVICE_BUFFER_H_
#define MCSERVE_TESTS_CUDA_DEVICE_BUFFER_H_

#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

namespace mcserve::kernels::cuda_test {

inline void CheckCuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
  std::abort();
}

// True when a CUDA device is usable; device tests skip (not run) otherwise.
inline bool HaveDevice() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

class DeviceBuffer {
 public:
  template <typename T>
  explicit DeviceBuffer(const std::vector<T>& host) : bytes_(host.size() * sizeof(T)) {
    Allocate();
    if (bytes_ > 0) {
      CheckCuda(cudaMemcpy(ptr_, host.data(), bytes_, cudaMemcpyHostToDevice), "upload");
    }
  }
  static DeviceBuffer Poisoned(size_t bytes) {
    DeviceBuffer b(bytes);
    if (bytes > 0) CheckCuda(cudaMemset(b.ptr_, 0xFF, bytes), "poison");
    return b;
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(o.bytes_) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  template <typename T>
  std::vector<T> Download() const {
    std::vector<T> host(bytes_ / sizeof(T));
    if (bytes_ > 0) {
      CheckCuda(cudaMemcpy(host.data(), ptr_, bytes_, cudaMemcpyDeviceToHost), "download");
    }
    return host;
  }

 private:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) { Allocate(); }
  void Allocate() { CheckCuda(cudaMalloc(&ptr_, bytes_ > 0 ? bytes_ : 1), "cudaMalloc"); }

  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace mcserve::kernels::cuda_test

#endif  // MCSERVE_TESTS_CUDA_DEVICE_BUFFER_H_
