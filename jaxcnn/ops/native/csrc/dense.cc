// A dense layer's input gradient for XLA:CPU as an FFI custom call, computed by oneDNN.
//
//   jaxcnn_dense_input_grad  (dy [N, M], w [K, M]) -> dx [N, K] = dy w^T
//
// A dense layer y = x w stores its kernel w as [in K, out M] (Flax's layout);
// its input gradient multiplies by the transposed kernel. XLA:CPU's Eigen
// matrix product is about three times slower on that transposed operand than
// on the forward product (benchmarks/ANALYSIS.md); oneDNN reads the kernel in
// place as the [M, K] matrix it is, with strides (1, M). Primitives are built
// once per shape and cached.

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "common.h"
#include "dnnl_common.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

using jaxcnn::cpu_engine;

struct Shape {
  int64_t n, m, k;
  memory::desc dy() const { return memory::desc({n, m}, memory::data_type::f32, memory::dims{m, 1}); }
  // The kernel [K, M] row-major, read as the [M, K] matrix w^T.
  memory::desc wt() const { return memory::desc({m, k}, memory::data_type::f32, memory::dims{1, m}); }
  memory::desc dx() const { return memory::desc({n, k}, memory::data_type::f32, memory::dims{k, 1}); }
};

struct Plan {
  dnnl::matmul matmul;
  memory::desc scratch;
};

const Plan& plan_for(const Shape& s) {
  static std::mutex cache_mutex;
  static std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> cache;
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto& slot = cache[std::make_tuple(s.n, s.m, s.k)];
  if (!slot) {
    dnnl::matmul::primitive_desc pd(cpu_engine(), s.dy(), s.wt(), s.dx(), jaxcnn::attributes());
    slot = std::make_unique<Plan>(Plan{dnnl::matmul(pd), pd.scratchpad_desc()});
  }
  return *slot;
}

ffi::Error DenseInputGrad(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> dx) {
  auto d = dy.dimensions();
  auto k = w.dimensions();
  if (d.size() != 2 || k.size() != 2 || d[1] != k[1])
    return ffi::Error::InvalidArgument("jaxcnn native dense: dy [N, M] and w [K, M] expected");
  const Shape s{d[0], d[1], k[0]};
  if (s.n == 0 || s.k == 0) return ffi::Error::Success();
  if (s.m == 0) {  // an empty sum
    std::fill(dx->typed_data(), dx->typed_data() + s.n * s.k, 0.0f);
    return ffi::Error::Success();
  }
  try {
    const Plan& plan = plan_for(s);
    auto& eng = cpu_engine();
    memory src(s.dy(), eng, dy.typed_data()), weights(s.wt(), eng, w.typed_data()),
        dst(s.dx(), eng, dx->typed_data());
    std::lock_guard<std::mutex> lock(jaxcnn::run_mutex());  // one native kernel at a time (common.h)
    static std::vector<char> scratch_bytes;
    if (scratch_bytes.size() < plan.scratch.get_size()) scratch_bytes.resize(plan.scratch.get_size());
    memory scratch(plan.scratch, eng, scratch_bytes.data());
    dnnl::stream stream(eng);
    plan.matmul.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst},
                                 {DNNL_ARG_SCRATCHPAD, scratch}});
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("jaxcnn native dense (oneDNN): ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace

JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_dense_input_grad(XLA_FFI_CallFrame*);

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_dense_input_grad, DenseInputGrad,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
