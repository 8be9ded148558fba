#include "server/http/update_queue.h"

#include <utility>

namespace mcserve::http {
namespace {

class IndexChannel : public engine::StreamChannel {
 public:
  IndexChannel(std::shared_ptr<UpdateQueue> q, int index,
               void (UpdateQueue::*push)(int, engine::GenerateUpdate))
      : q_(std::move(q)), index_(index), push_(push) {}
  void Send(engine::GenerateUpdate u) override { ((*q_).*push_)(index_, std::move(u)); }

 private:
  std::shared_ptr<UpdateQueue> q_;
  int index_;
  void (UpdateQueue::*push_)(int, engine::GenerateUpdate);
};

}  // namespace

std::shared_ptr<engine::StreamChannel> UpdateQueue::Channel(int index) {
  return std::make_shared<IndexChannel>(shared_from_this(), index, &UpdateQueue::Push);
}

void UpdateQueue::Push(int index, engine::GenerateUpdate update) {
  absl::MutexLock l(&mu_);
  items_.push_back(Item{index, std::move(update)});
}

UpdateQueue::Item UpdateQueue::Pop() {
  absl::MutexLock l(&mu_);
  bool (*ready)(std::deque<Item>*) = [](std::deque<Item>* q) { return !q->empty(); };
  mu_.Await(absl::Condition(ready, &items_));
  Item item = std::move(items_.front());
  items_.pop_front();
  return item;
}

}  // namespace mcserve::http
