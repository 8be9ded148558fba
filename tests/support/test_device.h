// The device the test suite runs models on: MCSERVE_TEST_DEVICE (cpu by
// default; e.g. cuda or cuda:1 on a GPU host), so the same integration and
// parity tests verify the CUDA path:
//   MCSERVE_TEST_DEVICE=cuda ctest -L 'integration|parity'
#ifndef MCSERVE_TESTS_SUPPORT_TEST_DEVICE_H_
#define MCSERVE_TESTS_SUPPORT_TEST_DEVICE_H_

#include <ATen/ATen.h>

#include <cstdlib>
#include <string>

namespace mcserve::testing {

inline std::string TestDeviceName() {
  const char* d = std::getenv("MCSERVE_TEST_DEVICE");
  return d != nullptr && *d != '\0' ? d : "cpu";
}

inline at::Device TestDevice() { return at::Device(TestDeviceName()); }

// The server flag selecting it.
inline std::string TestDeviceFlag() { return "--device=" + TestDeviceName(); }

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_SUPPORT_TEST_DEVICE_H_
