// The planner's memory-aware decisions, without a model.
#include "server/engine/planner.h"

#include <gtest/gtest.h>

namespace mcserve::engine {
namespace {

MemoryShape Shape(int64_t c, int64_t slots, bool keeps = true) {
  MemoryShape m;
  m.segment_length = c;
  m.device_slots = slots;
  m.keeps_checkpoints = keeps;
  return m;
}

TEST(PlannerTest, CheckpointsAfterCountsClosedSegments) {
  EXPECT_EQ(CheckpointsAfter(Shape(8, 10), 0, 0, 7), 0);
  EXPECT_EQ(CheckpointsAfter(Shape(8, 10), 0, 0, 8), 1);
  EXPECT_EQ(CheckpointsAfter(Shape(8, 10), 7, 3, 1), 4);
  EXPECT_EQ(CheckpointsAfter(Shape(8, 10), 9, 1, 30), 4);  // closes 16, 24, 32
  EXPECT_EQ(CheckpointsAfter(Shape(8, 10, false), 9, 0, 30), 0);
}

TEST(PlannerTest, FitsDeviceRefusesWhatTheDeviceCannotHoldUnlessLossy) {
  EXPECT_TRUE(FitsDevice(Shape(8, 4), 0, 0, 32, false).ok());  // exactly 4
  const absl::Status s = FitsDevice(Shape(8, 4), 0, 0, 40, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("5 checkpoints, more than the device tier's 4 slots"),
            std::string::npos)
      << s;
  EXPECT_TRUE(FitsDevice(Shape(8, 4), 0, 0, 40, true).ok());
  EXPECT_TRUE(FitsDevice(Shape(8, 0, false), 0, 0, 4000, false).ok());
}

TEST(PlannerTest, PrefillPieceStopsWhereTheDeviceRunsOutOfRoom) {
  // Room for 2 more checkpoints beside the 2 held: the piece may close two
  // segments (to position 16 from 3), not three.
  EXPECT_EQ(PrefillPiece(Shape(8, 4), 3, 2, 100, false), 5 + 8);
  EXPECT_EQ(PrefillPiece(Shape(8, 4), 3, 2, 6, false), 6);
  // No room at all still makes progress up to the next boundary.
  EXPECT_EQ(PrefillPiece(Shape(8, 4), 3, 4, 100, false), 5);
  EXPECT_EQ(PrefillPiece(Shape(8, 4, false), 3, 0, 100, false), 100);
}

TEST(PlannerTest, PrefillPieceStopsAtEachBoundaryForThePrefixCache) {
  EXPECT_EQ(PrefillPiece(Shape(8, 100), 3, 0, 100, true), 5);
  EXPECT_EQ(PrefillPiece(Shape(8, 100), 8, 0, 100, true), 8);
  EXPECT_EQ(PrefillPiece(Shape(8, 100), 8, 0, 3, true), 3);
  EXPECT_EQ(PrefillPiece(Shape(8, 100, false), 8, 0, 100, true), 8);
}

TEST(PlannerTest, GroupDecodesFitsEachGroupOnTheDeviceAndAlternates) {
  const std::vector<int64_t> needs = {3, 3, 2, 4, 1};
  using Groups = std::vector<std::vector<size_t>>;
  EXPECT_EQ(GroupDecodes(needs, 100, false), (Groups{{0, 1, 2, 3, 4}}));
  EXPECT_EQ(GroupDecodes(needs, 100, true), (Groups{{0, 1, 2, 3, 4}}));
  EXPECT_EQ(GroupDecodes(needs, 6, false), (Groups{{0, 1}, {2, 3}, {4}}));
  EXPECT_EQ(GroupDecodes(needs, 6, true), (Groups{{4}, {2, 3}, {0, 1}}));
  // A session needing more than the device alone still gets a group (the
  // store shrinks it or refuses it).
  EXPECT_EQ(GroupDecodes(std::vector<int64_t>{9, 1}, 6, false), (Groups{{0}, {1}}));
  EXPECT_TRUE(GroupDecodes({}, 6, false).empty());
}

}  // namespace
}  // namespace mcserve::engine
