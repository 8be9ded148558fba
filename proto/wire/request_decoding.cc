#include "proto/wire/request_decoding.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/stubs/common.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/wire_format_lite.h>

#include <vector>

namespace mcserve::wire {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// The unknown field a defective request is marked with: the highest field
// number protobuf allows, declared by no mcserve.v1 message. (A client that
// sends it itself only gets its own request refused.)
constexpr int kDefectField = 536870911;
// As deep as protobuf's own parser goes.
constexpr int kMaxDepth = 100;

std::string Malformed(const Descriptor& root) {
  return "request is not a valid " + root.full_name() + " message (malformed protobuf wire format)";
}

// Reads the rest of `in` as a message of `type`. Returns the first string field
// holding invalid UTF-8 ("field 'a.b[2]' is not valid UTF-8"), a wire-format
// error, or "" when all of it is valid.
std::string Walk(const Descriptor& root, const Descriptor& type, CodedInputStream& in,
                 const std::string& prefix, int depth) {
  if (depth > kMaxDepth) return Malformed(root);
  std::vector<std::pair<int, int>> seen;  // field number -> occurrences so far
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return in.ConsumedEntireMessage() ? "" : Malformed(root);
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const FieldDescriptor* f = type.FindFieldByNumber(number);
    const bool walk =
        f != nullptr &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
        (f->type() == FieldDescriptor::TYPE_STRING || f->type() == FieldDescriptor::TYPE_MESSAGE);
    if (!walk) {
      if (!WireFormatLite::SkipField(&in, tag)) return Malformed(root);
      continue;
    }
    std::string path = prefix + f->name();
    if (f->is_repeated()) {
      int index = 0;
      for (auto& [n, count] : seen) {
        if (n == number) index = count++;
      }
      if (index == 0) seen.emplace_back(number, 1);
      path += "[" + std::to_string(index) + "]";
    }
    uint32_t length = 0;
    if (!in.ReadVarint32(&length)) return Malformed(root);
    if (f->type() == FieldDescriptor::TYPE_STRING) {
      std::string value;
      if (!in.ReadString(&value, static_cast<int>(length))) return Malformed(root);
      if (!google::protobuf::internal::IsStructurallyValidUTF8(value.data(),
                                                               static_cast<int>(value.size()))) {
        return "field '" + path + "' is not valid UTF-8";
      }
      continue;
    }
    const CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(length));
    if (in.BytesUntilLimit() != static_cast<int>(length)) return Malformed(root);
    std::string defect = Walk(root, *f->message_type(), in, path + ".", depth + 1);
    if (!defect.empty()) return defect;
    in.PopLimit(limit);
  }
}

}  // namespace

std::string DiagnoseMessage(const Descriptor& type, std::string_view data) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(data.data()), static_cast<int>(data.size()));
  return Walk(type, type, in, "", 0);
}

grpc::Status DecodeRequest(grpc::ByteBuffer* buffer, google::protobuf::Message* message) {
  if (buffer == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "No payload");
  const grpc::ByteBuffer kept(*buffer);  // shares the slices: no copy of the payload
  if (grpc::GenericDeserialize<grpc::ProtoBufferReader, google::protobuf::Message>(buffer, message)
          .ok()) {
    return grpc::Status::OK;
  }
  std::string reason;
  std::vector<grpc::Slice> slices;
  if (kept.Dump(&slices).ok()) {
    std::string data;
    for (const grpc::Slice& s : slices) {
      data.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    reason = DiagnoseMessage(*message->GetDescriptor(), data);
  }
  if (reason.empty()) {
    reason = "request is not a valid " + message->GetDescriptor()->full_name() + " message";
  }
  message->Clear();
  message->GetReflection()->MutableUnknownFields(message)->AddLengthDelimited(kDefectField, reason);
  return grpc::Status::OK;
}

std::string RequestDefect(const google::protobuf::Message& message) {
  const google::protobuf::UnknownFieldSet& unknown =
      message.GetReflection()->GetUnknownFields(message);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const UnknownField& f = unknown.field(i);
    if (f.number() == kDefectField && f.type() == UnknownField::TYPE_LENGTH_DELIMITED) {
      return f.length_delimited();
    }
  }
  return "";
}

}  // namespace mcserve::wire
