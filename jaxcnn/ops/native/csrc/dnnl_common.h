// What the oneDNN kernels (conv.cc, dense.cc) share: one CPU engine, and the
// attributes every primitive is built with.
#ifndef JAXCNN_NATIVE_DNNL_COMMON_H_
#define JAXCNN_NATIVE_DNNL_COMMON_H_

#include "oneapi/dnnl/dnnl.hpp"

namespace jaxcnn {

inline dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Scratch memory is passed in by the caller: oneDNN's own per-thread
// scratchpad goes wrong when a primitive runs on threads other than the one
// that first ran it, as XLA's do.
inline dnnl::primitive_attr attributes() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

}  // namespace jaxcnn

#endif  // JAXCNN_NATIVE_DNNL_COMMON_H_
