// Engine results -> API messages.
#ifndef MCSERVE_SERVER_RPC_PROTO_CONVERT_H_
#define MCSERVE_SERVER_RPC_PROTO_CONVERT_H_

#include "mcserve/v1/generation.pb.h"
#include "server/engine/engine.h"
#include "server/engine/request.h"

namespace mcserve::rpc {

// Appends an update's prompt log-probabilities, tokens, text and (when
// finished) finish fields to `out`.
void AppendUpdate(const engine::GenerateUpdate& u, v1::GenerateResponse& out);
v1::FinishReason ToProto(engine::FinishReason r);
void ToProto(const engine::SessionInfo& info, v1::Session& out);

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_PROTO_CONVERT_H_
