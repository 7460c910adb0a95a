// BatchNorm's per-channel reductions for XLA:CPU as FFI custom calls.
//
// Both read images (any rank, channels last) in place, in one pass, and
// reduce over every axis but the channels and the first `groups` axes
// (groups = 1 under vmap: one set of sums per mapped example):
//   jaxcnn_bn_stats      (x, shift)       -> (sum(x - shift), sum((x - shift)^2))
//   jaxcnn_bn_grad_stats (x, dy, mean)    -> (sum(dy), sum(dy * (x - mean)))
// x and dy: (G..., M..., C) float32; shift and mean: (G..., C); results
// (G..., C) float32, accumulated in double. The shift (the running mean in
// the forward pass) keeps E[(x-s)^2] - E[x-s]^2 from cancelling when the
// mean is large against the spread. Everything else of BatchNorm (the
// normalisation, ReLU, the input gradient) is elementwise and left to XLA,
// which fuses it with its neighbours.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Shape {
  int64_t groups, rows, channels;  // G, M, C
};

ffi::ErrorOr<Shape> shape_of(ffi::AnyBuffer::Dimensions d, int64_t group_dims) {
  if (d.size() < 1 || group_dims < 0 || group_dims >= static_cast<int64_t>(d.size()))
    return ffi::Unexpected(ffi::Error::InvalidArgument("jaxcnn native BatchNorm: bad rank or groups"));
  Shape s{1, 1, d[d.size() - 1]};
  for (int64_t i = 0; i < group_dims; ++i) s.groups *= d[i];
  for (size_t i = group_dims; i + 1 < d.size(); ++i) s.rows *= d[i];
  return s;
}

// out1[g, c] = sum_m f1(a, b, ref), out2[g, c] = sum_m f2(a, b, ref) over the rows of group g.
template <typename Step>
void reduce(const Shape& s, const float* a, const float* b, const float* ref, float* out1, float* out2,
            Step step) {
  const int64_t C = s.channels;
  const int threads = std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(
                                                    (s.rows * C + (1 << 15) - 1) >> 15)));
  std::vector<double> partial(static_cast<size_t>(threads) * 2 * C);
  for (int64_t g = 0; g < s.groups; ++g) {
    const int64_t base = g * s.rows * C;
    const float* r = ref + g * C;
    std::fill(partial.begin(), partial.end(), 0.0);
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t lo = s.rows * t / T, hi = s.rows * (t + 1) / T;
      double* acc1 = partial.data() + static_cast<size_t>(t) * 2 * C;
      double* acc2 = acc1 + C;
      // Blocks of rows summed in float, then added in double: vector-wide in
      // the inner loop, and no float sum runs over more than kBlock terms.
      constexpr int64_t kBlock = 32;
      std::vector<float> f1(C), f2(C);
      for (int64_t m0 = lo; m0 < hi; m0 += kBlock) {
        std::fill(f1.begin(), f1.end(), 0.f);
        std::fill(f2.begin(), f2.end(), 0.f);
        const int64_t m1 = std::min(hi, m0 + kBlock);
        for (int64_t m = m0; m < m1; ++m) {
          const float* pa = a + base + m * C;
          const float* pb = b ? b + base + m * C : nullptr;
          float* __restrict q1 = f1.data();
          float* __restrict q2 = f2.data();
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) step(pa, pb, r, c, q1[c], q2[c]);
        }
        for (int64_t c = 0; c < C; ++c) {
          acc1[c] += f1[c];
          acc2[c] += f2[c];
        }
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      double s1 = 0, s2 = 0;
      for (int t = 0; t < threads; ++t) {
        s1 += partial[static_cast<size_t>(t) * 2 * C + c];
        s2 += partial[static_cast<size_t>(t) * 2 * C + C + c];
      }
      out1[g * C + c] = static_cast<float>(s1);
      out2[g * C + c] = static_cast<float>(s2);
    }
  }
}

ffi::Error BnStats(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> shift, ffi::ResultBuffer<ffi::F32> s1,
                   ffi::ResultBuffer<ffi::F32> s2, int64_t group_dims) {
  auto s = shape_of(x.dimensions(), group_dims);
  if (s.has_error()) return s.error();
  std::lock_guard<std::mutex> lock(jaxcnn::run_mutex());
  reduce(s.value(), x.typed_data(), nullptr, shift.typed_data(), s1->typed_data(), s2->typed_data(),
         [](const float* pa, const float*, const float* r, int64_t c, float& q1, float& q2) {
           const float d = pa[c] - r[c];
           q1 += d;
           q2 += d * d;
         });
  return ffi::Error::Success();
}

ffi::Error BnGradStats(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> mean,
                       ffi::ResultBuffer<ffi::F32> sdy, ffi::ResultBuffer<ffi::F32> sdyx, int64_t group_dims) {
  auto s = shape_of(x.dimensions(), group_dims);
  if (s.has_error()) return s.error();
  std::lock_guard<std::mutex> lock(jaxcnn::run_mutex());
  reduce(s.value(), dy.typed_data(), x.typed_data(), mean.typed_data(), sdy->typed_data(), sdyx->typed_data(),
         [](const float* pdy, const float* px, const float* r, int64_t c, float& q1, float& q2) {
           q1 += pdy[c];
           q2 += pdy[c] * (px[c] - r[c]);
         });
  return ffi::Error::Success();
}

}  // namespace

JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_bn_stats(XLA_FFI_CallFrame*);
JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_bn_grad_stats(XLA_FFI_CallFrame*);

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_bn_stats, BnStats,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("group_dims"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_bn_grad_stats, BnGradStats,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("group_dims"));
