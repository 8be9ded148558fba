// The engine's ends of one HTTP request: the updates of its completions
// (one, or n with GenerateRequest-style fan-out) are queued by the engine
// thread (Send never blocks), tagged with the completion's index, and taken
// by the connection's thread, which waits for them.
#ifndef MCSERVE_SERVER_HTTP_UPDATE_QUEUE_H_
#define MCSERVE_SERVER_HTTP_UPDATE_QUEUE_H_

#include <deque>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "server/engine/request.h"

namespace mcserve::http {

class UpdateQueue : public std::enable_shared_from_this<UpdateQueue> {
 public:
  struct Item {
    int index = 0;
    engine::GenerateUpdate update;
  };
  // The channel for completion `index`; it keeps the queue alive.
  std::shared_ptr<engine::StreamChannel> Channel(int index);
  // The next update of any completion, waiting for it.
  Item Pop();

 private:
  void Push(int index, engine::GenerateUpdate update);

  absl::Mutex mu_;
  std::deque<Item> items_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcserve::http

#endif  // MCSERVE_SERVER_HTTP_UPDATE_QUEUE_H_
