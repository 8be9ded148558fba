// A gtest fixture with one real mcserve process per test suite, serving a
// small random grm model with 8-token segments (so checkpoints appear fast).
#ifndef MCSERVE_TESTS_INTEGRATION_SERVER_FIXTURE_H_
#define MCSERVE_TESTS_INTEGRATION_SERVER_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/support/generate_helpers.h"
#include "tests/support/server_process.h"

namespace mcserve::testing {

// Writes a random test model once per process and returns its directory.
const std::string& TestModelDir();

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  // Extra server flags for this suite (override in a derived fixture's
  // SetUpTestSuite by calling StartServer).
  static void StartServer(const std::vector<std::string>& flags);

  client::Client& client() { return server_->client(); }
  // Waits until the server reports no running or waiting request.
  void WaitIdle();

  static std::unique_ptr<ServerProcess> server_;
};

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_INTEGRATION_SERVER_FIXTURE_H_
