#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/util/byte_size.h"
#include "server/util/crc32c.h"
#include "server/util/flags_help.h"

namespace mcserve {
namespace {

TEST(Crc32cTest, KnownVectors) {
  // RFC 3720 B.4 and the common check value.
  EXPECT_EQ(Crc32cExtend(0, "123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(Crc32cExtend(0, zeros.data(), zeros.size()), 0x8A9136AAu);
  const std::string ones(32, '\xff');
  EXPECT_EQ(Crc32cExtend(0, ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(Crc32cTest, ExtendingEqualsOneShot) {
  const std::string text = "memory caching checkpoints, one per segment of C tokens";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    const uint32_t a = Crc32cExtend(0, text.data(), cut);
    EXPECT_EQ(Crc32cExtend(a, text.data() + cut, text.size() - cut),
              Crc32cExtend(0, text.data(), text.size()));
  }
}

TEST(ByteSizeTest, ParsesUnits) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096);
  EXPECT_EQ(*ParseByteSize("64KiB"), 64 << 10);
  EXPECT_EQ(*ParseByteSize("256MiB"), int64_t{256} << 20);
  EXPECT_EQ(*ParseByteSize("2GiB"), int64_t{2} << 30);
  EXPECT_EQ(*ParseByteSize("3 MB"), 3000000);
  EXPECT_EQ(*ParseByteSize("0"), 0);
}

TEST(ByteSizeTest, RejectsNonsense) {
  for (const char* bad : {"", "MiB", "-1", "12 parsecs", "1.5GiB", "99999999999999GiB"}) {
    EXPECT_EQ(ParseByteSize(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(FlagsHelpTest, MatchesListedFilesByWholePathComponents) {
  const std::vector<std::string> files = {"server/server_options.cc", "client/cli.cc"};
  EXPECT_TRUE(IsFlagFile("server/server_options.cc", files));
  EXPECT_TRUE(IsFlagFile("work/repo/server/server_options.cc", files));
  EXPECT_TRUE(IsFlagFile("/work/repo/client/cli.cc", files));
  EXPECT_FALSE(IsFlagFile("work/repo/myserver/server_options.cc", files));
  EXPECT_FALSE(IsFlagFile("server/main.cc", files));
  EXPECT_FALSE(IsFlagFile("absl/flags/parse.cc", files));
}

}  // namespace
}  // namespace mcserve
