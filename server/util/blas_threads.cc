#include "server/util/blas_threads.h"

#include <dlfcn.h>

namespace mcserve {

bool SetBlasThreads(int n) {
  using SetFn = void (*)(int);
  // Looked up at run time: the server links LibTorch, not a BLAS, and the
  // BLAS behind it differs between Debian's build and PyTorch's.
  void* sym = dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
  if (sym == nullptr) return false;
  reinterpret_cast<SetFn>(sym)(n);
  return true;
}

}  // namespace mcserve
