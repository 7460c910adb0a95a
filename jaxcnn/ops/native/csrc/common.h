// What the native kernels share: one lock, so that one kernel runs at a time.
//
// Every kernel spreads its work over all cores (oneDNN's convolutions and the
// OpenMP loops of the BatchNorm and pooling kernels alike). XLA may run
// independent thunks at once; two OpenMP teams on the same cores would stall
// at each other's barriers, so the kernels take turns.
#ifndef JAXCNN_NATIVE_COMMON_H_
#define JAXCNN_NATIVE_COMMON_H_

#include <mutex>

namespace jaxcnn {

inline std::mutex& run_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace jaxcnn

#define JAXCNN_EXPORT extern "C" __attribute__((visibility("default")))

#endif  // JAXCNN_NATIVE_COMMON_H_
