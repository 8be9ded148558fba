// How the server turns a request's bytes into its message, so that a request
// that is not a valid message is answered INVALID_ARGUMENT naming what is wrong.
//
// gRPC 1.51's callback API answers a request whose deserialization fails with
// UNIMPLEMENTED and an empty message, before any handler runs. A proto3 string
// field holding invalid UTF-8 fails deserialization, and any C++ or raw client
// can send one. So every mcserve.v1 request type is decoded here instead: a
// valid message parses exactly as before; an invalid one is delivered empty and
// marked with the reason ("field 'text' is not valid UTF-8"), and the handler
// answers RequestDefect()'s status before looking at anything else.
//
// This header is included by the generated generation.grpc.pb.h (protoc's
// additional_header_includes), so every translation unit that instantiates the
// traits sees the same specializations.
#ifndef MCSERVE_PROTO_WIRE_REQUEST_DECODING_H_
#define MCSERVE_PROTO_WIRE_REQUEST_DECODING_H_

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

#include "mcserve/v1/generation.pb.h"

namespace mcserve::wire {

// Parses `buffer` into `message`, consuming the buffer. Returns an error only
// when there is no payload at all; a payload that is not a valid message leaves
// `message` cleared and marked (see RequestDefect).
grpc::Status DecodeRequest(grpc::ByteBuffer* buffer, google::protobuf::Message* message);

// Why `data` is not a valid message of `type`: the first string field holding
// invalid UTF-8, named by its path ("sampling.stop[1]"), or a wire-format
// error. Empty when `data` is a valid message.
std::string DiagnoseMessage(const google::protobuf::Descriptor& type, std::string_view data);

// The reason DecodeRequest marked `message` with, or empty for a valid one.
std::string RequestDefect(const google::protobuf::Message& message);

}  // namespace mcserve::wire

// Decodes request type T through DecodeRequest; serializes as gRPC does.
#define MCSERVE_WIRE_DECODED_REQUEST(T)                                                           \
  template <>                                                                                     \
  class grpc::SerializationTraits<T, void> {                                                      \
   public:                                                                                        \
    static grpc::Status Serialize(const grpc::protobuf::MessageLite& msg, grpc::ByteBuffer* bb,   \
                                  bool* own_buffer) {                                             \
      return grpc::GenericSerialize<grpc::ProtoBufferWriter, T>(msg, bb, own_buffer);             \
    }                                                                                             \
    static grpc::Status Deserialize(grpc::ByteBuffer* buffer, grpc::protobuf::MessageLite* msg) { \
      return mcserve::wire::DecodeRequest(buffer, static_cast<T*>(msg));                          \
    }                                                                                             \
  };

MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::GenerateRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::AbortRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::CreateSessionRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::ForkSessionRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::ExportSessionRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::ImportSessionRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::GetSessionRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::DeleteSessionRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::ListSessionsRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::GetModelInfoRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::TokenizeRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::DetokenizeRequest)
MCSERVE_WIRE_DECODED_REQUEST(mcserve::v1::GetServerStatusRequest)

#undef MCSERVE_WIRE_DECODED_REQUEST

#endif  // MCSERVE_PROTO_WIRE_REQUEST_DECODING_H_
