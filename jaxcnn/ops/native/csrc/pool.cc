// Max and average pooling over NHWC images for XLA:CPU as FFI custom calls.
//
//   jaxcnn_max_pool_fwd  (x)          -> (y, index)   index: int8, the window offset kh_i * KW + kw_j
//   jaxcnn_max_pool_bwd  (g, index)   -> dx           g routed to the element `index` names
//   jaxcnn_avg_pool_fwd  (x)          -> y
//   jaxcnn_avg_pool_bwd  (g)          -> dx           g / count spread over the window
// x, dx: (N, H, W, C) float32; y, g, index: (N, OH, OW, C). The attribute
// `params` holds [KH, KW, stride_h, stride_w, pad_top, pad_bottom, pad_left,
// pad_right, count_include_pad]. Padding counts as -inf for the max and as
// zeros for the average.
//
// The max of a window is its first maximum in row-major order (what
// lax.reduce_window's gradient picks on ties); a NaN counts as larger than
// any number, so a window holding one has the value NaN (as lax.max gives)
// and routes its gradient to its first NaN. A window's maximum that falls
// on padding sends its gradient nowhere.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Geometry {
  int64_t n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pl;
  bool include_pad;

  bool inside(int64_t ih, int64_t iw) const { return ih >= 0 && ih < h && iw >= 0 && iw < w; }
  // Real pixels under the window at (oy, ox).
  int64_t count(int64_t oy, int64_t ox) const {
    if (include_pad) return kh * kw;
    const int64_t y0 = std::max<int64_t>(0, oy * sh - pt), y1 = std::min(h, oy * sh - pt + kh);
    const int64_t x0 = std::max<int64_t>(0, ox * sw - pl), x1 = std::min(w, ox * sw - pl + kw);
    return std::max<int64_t>(0, y1 - y0) * std::max<int64_t>(0, x1 - x0);
  }
};

ffi::ErrorOr<Geometry> geometry(ffi::AnyBuffer::Dimensions in, ffi::AnyBuffer::Dimensions out,
                                ffi::Span<const int64_t> p) {
  if (in.size() != 4 || out.size() != 4 || p.size() != 9 || in[0] != out[0] || in[3] != out[3])
    return ffi::Unexpected(ffi::Error::InvalidArgument("jaxcnn native pooling: NHWC images and 9 params expected"));
  return Geometry{in[0], in[1], in[2], in[3], out[1], out[2], p[0], p[1], p[2], p[3], p[4], p[6], p[8] != 0};
}

int threads_for(int64_t elements) {
  return std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>((elements + (1 << 14) - 1) >> 14)));
}

// The backward passes write dx by (image, channel block): no two tasks touch the same element.
template <typename Body>
void per_image_and_channel_block(const Geometry& g, Body body) {
  const int threads = threads_for(g.n * g.h * g.w * g.c);
  const int64_t split = g.n >= threads ? 1 : std::min<int64_t>((threads + g.n - 1) / g.n, (g.c + 7) / 8);
  const int64_t block = (g.c + split - 1) / split;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t task = 0; task < g.n * split; ++task) {
    const int64_t n = task / split, c0 = (task % split) * block, c1 = std::min(g.c, c0 + block);
    if (c0 < c1) body(n, c0, c1);
  }
}

ffi::Error MaxFwd(ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::S8> index,
                  ffi::Span<const int64_t> params) {
  auto gm = geometry(x.dimensions(), y->dimensions(), params);
  if (gm.has_error()) return gm.error();
  const Geometry g = gm.value();
  if (g.kh * g.kw > 127) return ffi::Error::InvalidArgument("jaxcnn native max pool: at most 127 window elements");
  const float* px = x.typed_data();
  float* py = y->typed_data();
  int8_t* pi = index->typed_data();
  const float lowest = -std::numeric_limits<float>::infinity();
  std::lock_guard<std::mutex> lock(jaxcnn::run_mutex());
  const int threads = threads_for(g.n * g.oh * g.ow * g.c);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        float* __restrict yo = py + ((n * g.oh + oy) * g.ow + ox) * g.c;
        int8_t* __restrict io = pi + ((n * g.oh + oy) * g.ow + ox) * g.c;
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t ih = oy * g.sh - g.pt + i;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t iw = ox * g.sw - g.pl + j;
            const int8_t k = static_cast<int8_t>(i * g.kw + j);
            if (k == 0) {
              if (g.inside(ih, iw)) {
                std::memcpy(yo, px + ((n * g.h + ih) * g.w + iw) * g.c, sizeof(float) * g.c);
              } else {
                std::fill(yo, yo + g.c, lowest);
              }
              std::fill(io, io + g.c, int8_t{0});
              continue;
            }
            if (!g.inside(ih, iw)) continue;  // -inf never beats what is there
            const float* __restrict xr = px + ((n * g.h + ih) * g.w + iw) * g.c;
#pragma omp simd
            for (int64_t c = 0; c < g.c; ++c) {
              const float v = xr[c], m = yo[c];
              const bool take = v > m || (v != v && m == m);
              yo[c] = take ? v : m;
              io[c] = take ? k : io[c];
            }
          }
        }
      }
    }
  }
  return ffi::Error::Success();
}

ffi::Error MaxBwd(ffi::Buffer<ffi::F32> grad, ffi::Buffer<ffi::S8> index, ffi::ResultBuffer<ffi::F32> dx,
                  ffi::Span<const int64_t> params) {
  auto gm = geometry(dx->dimensions(), grad.dimensions(), params);
  if (gm.has_error()) return gm.error();
  const Geometry g = gm.value();
  const float* pg = grad.typed_data();
  const int8_t* pi = index.typed_data();
  float* pd = dx->typed_data();
  std::lock_guard<std::mutex> lock(jaxcnn::run_mutex());
  per_image_and_channel_block(g, [&](int64_t n, int64_t c0, int64_t c1) {
    for (int64_t p = 0; p < g.h * g.w; ++p) std::fill(pd + (n * g.h * g.w + p) * g.c + c0, pd + (n * g.h * g.w + p) * g.c + c1, 0.f);
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const float* __restrict go = pg + ((n * g.oh + oy) * g.ow + ox) * g.c;
        const int8_t* __restrict io = pi + ((n * g.oh + oy) * g.ow + ox) * g.c;
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t ih = oy * g.sh - g.pt + i;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t iw = ox * g.sw - g.pl + j;
            if (!g.inside(ih, iw)) continue;
            const int8_t k = static_cast<int8_t>(i * g.kw + j);
            float* __restrict dr = pd + ((n * g.h + ih) * g.w + iw) * g.c;
#pragma omp simd
            for (int64_t c = c0; c < c1; ++c) dr[c] += io[c] == k ? go[c] : 0.f;
          }
        }
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error AvgFwd(ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> y, ffi::Span<const int64_t> params) {
  auto gm = geometry(x.dimensions(), y->dimensions(), params);
  if (gm.has_error()) return gm.error();
  const Geometry g = gm.value();
  const float* px = x.typed_data();
  float* py = y->typed_data();
  std::lock_guard<std::mutex> lock(jaxcnn::run_mutex());
  const int threads = threads_for(g.n * g.oh * g.ow * g.c);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        float* __restrict yo = py + ((n * g.oh + oy) * g.ow + ox) * g.c;
        std::fill(yo, yo + g.c, 0.f);
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t ih = oy * g.sh - g.pt + i;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t iw = ox * g.sw - g.pl + j;
            if (!g.inside(ih, iw)) continue;
            const float* __restrict xr = px + ((n * g.h + ih) * g.w + iw) * g.c;
#pragma omp simd
            for (int64_t c = 0; c < g.c; ++c) yo[c] += xr[c];
          }
        }
        const float inv = 1.f / static_cast<float>(g.count(oy, ox));
#pragma omp simd
        for (int64_t c = 0; c < g.c; ++c) yo[c] *= inv;
      }
    }
  }
  return ffi::Error::Success();
}

ffi::Error AvgBwd(ffi::Buffer<ffi::F32> grad, ffi::ResultBuffer<ffi::F32> dx, ffi::Span<const int64_t> params) {
  auto gm = geometry(dx->dimensions(), grad.dimensions(), params);
  if (gm.has_error()) return gm.error();
  const Geometry g = gm.value();
  const float* pg = grad.typed_data();
  float* pd = dx->typed_data();
  std::lock_guard<std::mutex> lock(jaxcnn::run_mutex());
  per_image_and_channel_block(g, [&](int64_t n, int64_t c0, int64_t c1) {
    for (int64_t p = 0; p < g.h * g.w; ++p) std::fill(pd + (n * g.h * g.w + p) * g.c + c0, pd + (n * g.h * g.w + p) * g.c + c1, 0.f);
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const float* __restrict go = pg + ((n * g.oh + oy) * g.ow + ox) * g.c;
        const float inv = 1.f / static_cast<float>(g.count(oy, ox));
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t ih = oy * g.sh - g.pt + i;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t iw = ox * g.sw - g.pl + j;
            if (!g.inside(ih, iw)) continue;
            float* __restrict dr = pd + ((n * g.h + ih) * g.w + iw) * g.c;
#pragma omp simd
            for (int64_t c = c0; c < c1; ++c) dr[c] += go[c] * inv;
          }
        }
      }
    }
  });
  return ffi::Error::Success();
}

}  // namespace

JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_max_pool_fwd(XLA_FFI_CallFrame*);
JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_max_pool_bwd(XLA_FFI_CallFrame*);
JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_avg_pool_fwd(XLA_FFI_CallFrame*);
JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_avg_pool_bwd(XLA_FFI_CallFrame*);

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_max_pool_fwd, MaxFwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S8>>()
                                  .Attr<ffi::Span<const int64_t>>("params"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_max_pool_bwd, MaxBwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S8>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<ffi::Span<const int64_t>>("params"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_avg_pool_fwd, AvgFwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<ffi::Span<const int64_t>>("params"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_avg_pool_bwd, AvgBwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<ffi::Span<const int64_t>>("params"));
