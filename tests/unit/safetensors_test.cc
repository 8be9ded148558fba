#include "server/model/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "server/model/mc_model.h"
#include "server/model/weights.h"
#include "tests/support/test_models.h"

namespace mcserve::model {
namespace {

using testing::FreshDir;

std::string WriteBytes(const std::string& bytes) {
  const std::string path = FreshDir("st") + "/x.safetensors";
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string WithHeader(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

absl::Status OpenStatus(const std::string& path) { return SafetensorsFile::Open(path).status(); }

TEST(SafetensorsTest, RoundTripsEveryDtype) {
  const std::string path = FreshDir("st") + "/ok.safetensors";
  const std::vector<float> v = {0.0f, 1.0f, -2.5f, 3.140625f, 65504.0f, -1e-3f};
  ASSERT_TRUE(WriteSafetensors(path, {{"a", {2, 3}, v, StDtype::kF32},
                                      {"b", {6}, v, StDtype::kBF16},
                                      {"c", {3, 2}, v, StDtype::kF16}})
                  .ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const auto& t = (*f)->tensors();
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(StToFloat(t.at("a")), v);
  const std::vector<float> b = StToFloat(t.at("b"));
  const std::vector<float> c = StToFloat(t.at("c"));
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_NEAR(b[i], v[i], std::abs(v[i]) * 1e-2 + 1e-6);
    EXPECT_NEAR(c[i], v[i], std::abs(v[i]) * 1e-3 + 1e-6);
  }
}

TEST(SafetensorsTest, RejectsCorruptFilesWithClearErrors) {
  EXPECT_NE(OpenStatus(WriteBytes("abc")).message().find("too short"), std::string::npos);
  EXPECT_NE(OpenStatus(WriteBytes(std::string("\xff\xff\xff\xff\0\0\0\0{}", 10)))
                .message()
                .find("bad header"),
            std::string::npos);
  EXPECT_NE(OpenStatus(WriteBytes(WithHeader("not json", ""))).message().find("not a JSON object"),
            std::string::npos);
  const std::string past_end = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  absl::Status s = OpenStatus(WriteBytes(WithHeader(past_end, std::string(8, '\0'))));
  EXPECT_NE(s.message().find("tensor 'w'"), std::string::npos) << s;
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s;
  const std::string size_mismatch = R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})";
  s = OpenStatus(WriteBytes(WithHeader(size_mismatch, std::string(16, '\0'))));
  EXPECT_NE(s.message().find("shape and dtype need 12"), std::string::npos) << s;
  const std::string bad_dtype = R"({"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})";
  s = OpenStatus(WriteBytes(WithHeader(bad_dtype, std::string(16, '\0'))));
  EXPECT_NE(s.message().find("unsupported dtype I64"), std::string::npos) << s;
  EXPECT_EQ(OpenStatus("/nonexistent.safetensors").code(), absl::StatusCode::kNotFound);
}

class WeightsTest : public ::testing::Test {
 protected:
  ModelConfig Config() {
    return testing::SmallConfig(MemoryRule::kDelta, true, Aggregation::kGrm, 4,
                                Boundary::kContinue);
  }
  absl::Status Load(const std::vector<StWriteTensor>& tensors) {
    const std::string path = FreshDir("w") + "/model.safetensors";
    EXPECT_TRUE(WriteSafetensors(path, tensors).ok());
    auto f = SafetensorsFile::Open(path);
    EXPECT_TRUE(f.ok());
    return LoadWeights(Config(), (*f)->tensors(), at::kCPU).status();
  }
};

TEST_F(WeightsTest, LoadsExactlyTheExpectedSet) {
  EXPECT_TRUE(Load(RandomWeights(Config(), 1)).ok());
  EXPECT_TRUE(Load(RandomWeights(Config(), 1, StDtype::kBF16)).ok());
}

TEST_F(WeightsTest, NamesMissingExtraAndMisshapenTensors) {
  auto t = RandomWeights(Config(), 1);
  auto missing = t;
  missing.erase(std::find_if(missing.begin(), missing.end(), [](const auto& x) {
    return x.name == "layers.1.mixer.u_proj.weight";
  }));
  EXPECT_NE(Load(missing).message().find("missing tensor 'layers.1.mixer.u_proj.weight'"),
            std::string::npos);
  auto extra = t;
  extra.push_back({"layers.0.mixer.x_proj.weight", {2}, {1, 2}, StDtype::kF32});
  EXPECT_NE(Load(extra).message().find("unexpected tensor 'layers.0.mixer.x_proj.weight'"),
            std::string::npos);
  auto shape = t;
  for (auto& x : shape) {
    if (x.name == "norm.weight") {
      x.shape = {31};
      x.values.resize(31);
    }
  }
  EXPECT_NE(Load(shape).message().find("tensor 'norm.weight' has shape [31], expected [32]"),
            std::string::npos);
}

TEST_F(WeightsTest, UProjIsRequiredOnlyForGatedAggregations) {
  ModelConfig none = Config();
  none.aggregation = Aggregation::kResidual;
  for (const TensorSpec& s : ExpectedTensors(none)) {
    EXPECT_EQ(s.name.find("u_proj"), std::string::npos) << s.name;
  }
  int u = 0;
  for (const TensorSpec& s : ExpectedTensors(Config()))
    u += s.name.find("u_proj") != std::string::npos;
  EXPECT_EQ(u, Config().n_layers);
}

}  // namespace
}  // namespace mcserve::model
