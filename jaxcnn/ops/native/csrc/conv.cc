// Two-dimensional convolutions for XLA:CPU as FFI custom calls, computed by oneDNN.
//
// Three handlers, one per direction of a convolution in jaxcnn's layouts:
//   jaxcnn_conv_fwd          (x NHWC, w HWIO)    -> y  NHWC
//   jaxcnn_conv_bwd_data     (dy NHWC, w HWIO)   -> dx NHWC
//   jaxcnn_conv_bwd_weights  (x NHWC, dy NHWC)   -> dw HWIO
// The shapes come from the buffers; the attribute `params` holds
// [stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right,
//  dilation_h, dilation_w, groups]. Activations are read and written in place
// as NHWC; kernels are reordered to the layout oneDNN picks for the shape
// (they are small). Primitives are built once per shape and cached.

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
using tag = dnnl::memory::format_tag;

namespace {

using jaxcnn::attributes;  // scratch memory is ours (see `run`; dnnl_common.h)
using jaxcnn::cpu_engine;

enum class Kind : int64_t { kFwd = 0, kBwdData = 1, kBwdWeights = 2 };

struct Geometry {
  int64_t n, h, w, c;         // input images
  int64_t kh, kw, o;          // kernel height, width, total out-channels
  int64_t oh, ow;             // output images
  int64_t sh, sw, pt, pb, pl, pr, dh, dw, g;
  memory::data_type dt;

  auto key(Kind kind) const {
    return std::make_tuple(static_cast<int64_t>(kind), static_cast<int64_t>(dt),
                           std::vector<int64_t>{n, h, w, c, kh, kw, o, oh, ow, sh, sw,
                                                pt, pb, pl, pr, dh, dw, g});
  }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dilates() const { return {dh - 1, dw - 1}; }  // oneDNN counts the gaps
  memory::dims pad_lo() const { return {pt, pl}; }
  memory::dims pad_hi() const { return {pb, pr}; }

  memory::desc images(int64_t nn, int64_t cc, int64_t hh, int64_t ww) const {
    return memory::desc({nn, cc, hh, ww}, dt, tag::nhwc);
  }
  memory::desc src() const { return images(n, c, h, w); }
  memory::desc dst() const { return images(n, o, oh, ow); }

  // The kernel as stored by JAX: HWIO, I = c / g, and O = g * (o / g) with the
  // group outermost, so grouped weights are (G, O/G, I/G, KH, KW) over strides.
  memory::desc hwio() const {
    const int64_t i = c / g;
    if (g == 1) return memory::desc({o, i, kh, kw}, dt, memory::dims{1, o, kw * i * o, i * o});
    return memory::desc({g, o / g, i, kh, kw}, dt,
                        memory::dims{o / g, 1, o, kw * i * o, i * o});
  }
  memory::desc weights_any() const {
    const int64_t i = c / g;
    if (g == 1) return memory::desc({o, i, kh, kw}, dt, tag::any);
    return memory::desc({g, o / g, i, kh, kw}, dt, tag::any);
  }
};

// A cached primitive with what it needs around it: the kernel's layout inside
// the primitive, a reorder between that and HWIO where the two differ, and the
// scratch memory both ask for.
struct Plan {
  dnnl::primitive conv;
  memory::desc weights;                    // the primitive's kernel layout
  std::unique_ptr<dnnl::reorder> reorder;  // HWIO <-> `weights`, if they differ
  memory::desc conv_scratch, reorder_scratch;
};

dnnl::convolution_forward::primitive_desc forward_pd(const Geometry& g) {
  return dnnl::convolution_forward::primitive_desc(
      cpu_engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      g.src(), g.weights_any(), g.dst(), g.strides(), g.dilates(), g.pad_lo(), g.pad_hi(),
      attributes());
}

std::unique_ptr<Plan> make_plan(Kind kind, const Geometry& g) {
  auto plan = std::make_unique<Plan>();
  auto fwd = forward_pd(g);
  const memory::desc user = g.hwio();
  if (kind == Kind::kFwd) {
    plan->conv = dnnl::convolution_forward(fwd);
    plan->weights = fwd.weights_desc();
    plan->conv_scratch = fwd.scratchpad_desc();
  } else if (kind == Kind::kBwdData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        cpu_engine(), dnnl::algorithm::convolution_direct, g.src(), g.weights_any(), g.dst(),
        g.strides(), g.dilates(), g.pad_lo(), g.pad_hi(), fwd, attributes());
    plan->conv = dnnl::convolution_backward_data(pd);
    plan->weights = pd.weights_desc();
    plan->conv_scratch = pd.scratchpad_desc();
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        cpu_engine(), dnnl::algorithm::convolution_direct, g.src(), g.weights_any(), g.dst(),
        g.strides(), g.dilates(), g.pad_lo(), g.pad_hi(), fwd, attributes());
    plan->conv = dnnl::convolution_backward_weights(pd);
    plan->weights = pd.diff_weights_desc();
    plan->conv_scratch = pd.scratchpad_desc();
  }
  if (plan->weights != user) {
    const bool to_user = kind == Kind::kBwdWeights;
    dnnl::reorder::primitive_desc pd(cpu_engine(), to_user ? plan->weights : user, cpu_engine(),
                                     to_user ? user : plan->weights, attributes());
    plan->reorder = std::make_unique<dnnl::reorder>(pd);
    plan->reorder_scratch = pd.scratchpad_desc();
  }
  return plan;
}

using jaxcnn::run_mutex;  // one native kernel at a time (common.h)

// Memory for the scratchpads and the reordered kernel, kept between calls
// (only touched under `run_mutex`) so that large convolutions do not fault in
// fresh pages every step.
class Arena {
 public:
  // Hands out `md`-sized pieces of one buffer, 64-byte aligned.
  memory take(const memory::desc& md) {
    const size_t offset = used_;
    used_ += (md.get_size() + 63) / 64 * 64;
    if (used_ > buffer_.size() * sizeof(Line)) {
      // Pieces already handed out in this call keep their old buffer alive until `reset`.
      retired_.push_back(std::move(buffer_));
      buffer_.assign(2 * used_ / sizeof(Line) + 1, Line{});
      used_ = 0;
      return take(md);
    }
    return memory(md, cpu_engine(), reinterpret_cast<char*>(buffer_.data()) + offset);
  }
  void reset() {
    used_ = 0;
    retired_.clear();
  }

 private:
  struct alignas(64) Line { char bytes[64]; };
  std::vector<Line> buffer_;
  std::vector<std::vector<Line>> retired_;
  size_t used_ = 0;
};

const Plan& plan_for(Kind kind, const Geometry& g) {
  static std::mutex cache_mutex;
  static std::map<decltype(g.key(kind)), std::unique_ptr<Plan>> cache;
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto& slot = cache[g.key(kind)];
  if (!slot) slot = make_plan(kind, g);
  return *slot;
}

ffi::ErrorOr<memory::data_type> dnnl_type(ffi::DataType t) {
  switch (t) {
    case ffi::DataType::F32: return memory::data_type::f32;
    case ffi::DataType::BF16: return memory::data_type::bf16;
    default: return ffi::Unexpected(ffi::Error::InvalidArgument("jaxcnn native conv: float32 or bfloat16 only"));
  }
}

// Builds the geometry from the images on either side and the kernel's HWIO shape.
ffi::ErrorOr<Geometry> geometry(ffi::AnyBuffer::Dimensions in, ffi::AnyBuffer::Dimensions out,
                                int64_t kh, int64_t kw, int64_t o, ffi::DataType type,
                                ffi::Span<const int64_t> p) {
  if (in.size() != 4 || out.size() != 4 || p.size() != 9)
    return ffi::Unexpected(ffi::Error::InvalidArgument("jaxcnn native conv: rank-4 images and 9 params expected"));
  auto dt = dnnl_type(type);
  if (dt.has_error()) return ffi::Unexpected(dt.error());
  return Geometry{in[0], in[1], in[2], in[3], kh, kw, o, out[1], out[2],
                  p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], dt.value()};
}

ffi::Error run(Kind kind, const Geometry& g, void* x, void* w, void* y) {
  // x: input images, w: HWIO kernel, y: output images; which of them is read
  // and which written depends on `kind`.
  try {
    const Plan& plan = plan_for(kind, g);
    auto& eng = cpu_engine();
    memory src(g.src(), eng, x), dst(g.dst(), eng, y), user_w(g.hwio(), eng, w);
    std::lock_guard<std::mutex> lock(run_mutex());
    static Arena arena;
    arena.reset();
    memory conv_w = plan.reorder ? arena.take(plan.weights) : user_w;
    memory conv_scratch = arena.take(plan.conv_scratch);
    dnnl::stream stream(eng);
    auto reorder = [&](memory& from, memory& to) {
      plan.reorder->execute(stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to},
                                     {DNNL_ARG_SCRATCHPAD, arena.take(plan.reorder_scratch)}});
    };
    if (plan.reorder && kind != Kind::kBwdWeights) reorder(user_w, conv_w);
    switch (kind) {
      case Kind::kFwd:
        plan.conv.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, conv_w}, {DNNL_ARG_DST, dst},
                                   {DNNL_ARG_SCRATCHPAD, conv_scratch}});
        break;
      case Kind::kBwdData:
        plan.conv.execute(stream, {{DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_WEIGHTS, conv_w},
                                   {DNNL_ARG_DIFF_SRC, src}, {DNNL_ARG_SCRATCHPAD, conv_scratch}});
        break;
      case Kind::kBwdWeights:
        plan.conv.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dst},
                                   {DNNL_ARG_DIFF_WEIGHTS, conv_w}, {DNNL_ARG_SCRATCHPAD, conv_scratch}});
        if (plan.reorder) reorder(conv_w, user_w);
        break;
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("jaxcnn native conv (oneDNN): ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error ConvFwd(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> y,
                   ffi::Span<const int64_t> params) {
  auto k = w.dimensions();
  auto g = geometry(x.dimensions(), y->dimensions(), k[0], k[1], k[3], x.element_type(), params);
  if (g.has_error()) return g.error();
  return run(Kind::kFwd, g.value(), x.untyped_data(), w.untyped_data(), y->untyped_data());
}

ffi::Error ConvBwdData(ffi::AnyBuffer dy, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> dx,
                       ffi::Span<const int64_t> params) {
  auto k = w.dimensions();
  auto g = geometry(dx->dimensions(), dy.dimensions(), k[0], k[1], k[3], dy.element_type(), params);
  if (g.has_error()) return g.error();
  return run(Kind::kBwdData, g.value(), dx->untyped_data(), w.untyped_data(), dy.untyped_data());
}

ffi::Error ConvBwdWeights(ffi::AnyBuffer x, ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dw,
                          ffi::Span<const int64_t> params) {
  auto k = dw->dimensions();
  auto g = geometry(x.dimensions(), dy.dimensions(), k[0], k[1], k[3], x.element_type(), params);
  if (g.has_error()) return g.error();
  return run(Kind::kBwdWeights, g.value(), x.untyped_data(), dw->untyped_data(), dy.untyped_data());
}

}  // namespace

// The library is built with hidden visibility; these are its entry points.
JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_conv_fwd(XLA_FFI_CallFrame*);
JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_conv_bwd_data(XLA_FFI_CallFrame*);
JAXCNN_EXPORT XLA_FFI_Error* jaxcnn_conv_bwd_weights(XLA_FFI_CallFrame*);

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_conv_fwd, ConvFwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("params"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_conv_bwd_data, ConvBwdData,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("params"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(jaxcnn_conv_bwd_weights, ConvBwdWeights,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("params"));

// Whether oneDNN has a kernel for `dt` convolutions on this CPU better than its
// reference loops (bfloat16 needs AVX-512 or AVX2 with the bf16 extensions).
JAXCNN_EXPORT int jaxcnn_native_fast_dtype(int bf16) {
  try {
    Geometry g{8, 8, 8, 16, 3, 3, 16, 8, 8, 1, 1, 1, 1, 1, 1, 1, 1, 1,
               bf16 ? memory::data_type::bf16 : memory::data_type::f32};
    auto fwd = forward_pd(g);
    const std::string impl = fwd.impl_info_str();
    return impl.rfind("ref", 0) == 0 ? 0 : 1;
  } catch (const dnnl::error&) {
    return 0;
  }
}

// oneDNN's version, for the status line: major * 10000 + minor * 100 + patch.
JAXCNN_EXPORT int jaxcnn_native_dnnl_version() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}
