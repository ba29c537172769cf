// One streaming step of a whole SSM recommender (Mamba4Rec / 2Mamba4Rec) on CPU, in one C++ call.
//
// Why: at batch 1 the Python step is ~30 small torch ops (in_proj, conv window, x_proj, dt, the state update,
// gating, out_proj, two LayerNorms, the PFFN), each a few microseconds of dispatch for a few thousand FLOPs.
// Here the same maths runs as plain loops over the packed weights; see ssmrec_lib/ssm/fused_step.py for the
// packing, the Python wrapper and the glossary. Eval mode only (no dropout). float32 only.
//
// Per layer (u = the layer input (d,)):
//   Mamba  (kind 0): [x, z] = W_in u;  conv window <- [window[1:], x];  xc = silu(window . w_conv + b_conv)
//                    [dt_r, B, C] = W_x xc;  dt = softplus(W_dt dt_r + b_dt)
//                    h[e, n] = exp(dt[e] A[e, n]) h[e, n] + dt[e] xc[e] B[n];  y[e] = (h[e] . C + D[e] xc[e]) silu(z[e])
//                    out = W_out y
//   Mamba2 (kind 1): [z, xBC, dt] = W_in u (+ b_in);  conv window <- [window[1:], xBC];  xBC = silu(conv + b)
//                    [x (H, P), B (G, N), C (G, N)] = xBC;  dt[h] = softplus(dt[h] + dt_bias[h]); a[h] = exp(dt[h] A[h])
//                    h[h, p, n] = a[h] h[h, p, n] + dt[h] x[h, p] B[g(h), n];  y[h, p] = h[h, p] . C[g(h)] + D[h] x[h, p]
//                    y = RMSNorm_groups(y * silu(z)) * w_norm;  out = W_out y (+ b_out)
//   then (SSMLayer): v = out (+ u if residual);  a = LN(v);  u' = LN_f(W2 gelu(W1 a + b1) + b2 + a)
// Model: u0 = LN_emb(E[item]); layers; the read-out is the last layer's output.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "aligned_alloc.h"

namespace {

constexpr int kHeader = 5;      // n_layers, d, d_ff, residual, layer block size
constexpr int kLayerInts = 32;  // ints per layer block in `meta`

// meta layout: header [n_layers, d, d_ff, residual, kLayerInts, off_emb, off_emb_ln_w, off_emb_ln_b]
// then per layer kLayerInts ints, see the enum.
enum LayerField {
  KIND, E, N, R, K, H, P, G, CONV_DIM,
  IN_W, IN_B, CONV_W, CONV_B, XPROJ_W, DTPROJ_W, DT_B, A, D, NORM_W, OUT_W, OUT_B,
  LN_W, LN_B, FF_W1, FF_B1, FF_W2, FF_B2, FF_LN_W, FF_LN_B, IN_ROWS
};

using FVec = ssmrec::AVec<float>;  // 64-byte aligned scratch: bit-reproducible outputs (aligned_alloc.h)

inline float silu(float v) { return v / (1.f + std::exp(-v)); }
inline float softplus(float v) { return v > 20.f ? v : std::log1p(std::exp(v)); }
inline float gelu(float v) { return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f)); }

// out[i] = W[i, :] . x (+ b[i]);  W (rows, cols) row-major
inline void matvec(const float* W, const float* b, const float* x, float* out, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* w = W + i * cols;
    float s = 0.f;
    for (int64_t j = 0; j < cols; ++j) s += w[j] * x[j];
    out[i] = b ? s + b[i] : s;
  }
}

inline void layer_norm(const float* x, const float* w, const float* b, float* out, int64_t d, float eps) {
  float mean = 0.f;
  for (int64_t i = 0; i < d; ++i) mean += x[i];
  mean /= d;
  float var = 0.f;
  for (int64_t i = 0; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
  const float inv = 1.f / std::sqrt(var / d + eps);
  for (int64_t i = 0; i < d; ++i) out[i] = (x[i] - mean) * inv * w[i] + b[i];
}

inline const float* at_off(const float* flat, int64_t off) { return off < 0 ? nullptr : flat + off; }

// conv window shift + depthwise dot + SiLU. in (C,), old/new windows (C, K), out (C,)
inline void conv_step(const float* in, const float* old_w, float* new_w, const float* w, const float* bias,
                      float* out, int64_t C, int64_t K) {
  for (int64_t c = 0; c < C; ++c) {
    const float* o = old_w + c * K;
    float* nw = new_w + c * K;
    for (int64_t k = 0; k + 1 < K; ++k) nw[k] = o[k + 1];
    nw[K - 1] = in[c];
    float s = bias ? bias[c] : 0.f;
    for (int64_t k = 0; k < K; ++k) s += nw[k] * w[c * K + k];
    out[c] = silu(s);
  }
}

// Mamba block for one user. u (d,) -> out (d,); conv (E, K), state (E, N) old -> new
void mamba_block(const float* flat, const int64_t* L, const float* u, const float* conv_old, float* conv_new,
                 const float* h_old, float* h_new, float* out, int64_t d, FVec& buf) {
  const int64_t E_ = L[E], N_ = L[N], R_ = L[R], K_ = L[K];
  buf.resize(2 * E_ + E_ + (R_ + 2 * N_) + E_ + E_);
  float* xz = buf.data();            // (2E)
  float* xc = xz + 2 * E_;           // (E)
  float* dbc = xc + E_;              // (R + 2N)
  float* dt = dbc + R_ + 2 * N_;     // (E)
  float* y = dt + E_;                // (E)
  matvec(flat + L[IN_W], at_off(flat, L[IN_B]), u, xz, 2 * E_, d);
  conv_step(xz, conv_old, conv_new, flat + L[CONV_W], at_off(flat, L[CONV_B]), xc, E_, K_);
  matvec(flat + L[XPROJ_W], nullptr, xc, dbc, R_ + 2 * N_, E_);
  matvec(flat + L[DTPROJ_W], flat + L[DT_B], dbc, dt, E_, R_);
  const float* Bv = dbc + R_;
  const float* Cv = Bv + N_;
  const float* A_ = flat + L[A];
  const float* D_ = flat + L[D];
  for (int64_t e = 0; e < E_; ++e) {
    const float dte = softplus(dt[e]);
    const float dx = dte * xc[e];
    const float* ho = h_old + e * N_;
    float* hn = h_new + e * N_;
    const float* Ae = A_ + e * N_;
    float s = 0.f;
    for (int64_t n = 0; n < N_; ++n) {
      const float v = std::exp(dte * Ae[n]) * ho[n] + dx * Bv[n];
      hn[n] = v;
      s += v * Cv[n];
    }
    y[e] = (s + D_[e] * xc[e]) * silu(xz[E_ + e]);
  }
  matvec(flat + L[OUT_W], at_off(flat, L[OUT_B]), y, out, d, E_);
}

// Mamba2 block for one user. conv (conv_dim, K), state (H, P, N)
void mamba2_block(const float* flat, const int64_t* L, const float* u, const float* conv_old, float* conv_new,
                  const float* h_old, float* h_new, float* out, int64_t d, FVec& buf) {
  const int64_t E_ = L[E], N_ = L[N], K_ = L[K], H_ = L[H], P_ = L[P], G_ = L[G], CD = L[CONV_DIM];
  const int64_t rows = L[IN_ROWS];  // 2E + 2GN + H
  buf.resize(rows + CD + E_);
  float* zxbcdt = buf.data();
  float* xbc = zxbcdt + rows;  // (conv_dim) after conv + SiLU
  float* y = xbc + CD;         // (E)
  matvec(flat + L[IN_W], at_off(flat, L[IN_B]), u, zxbcdt, rows, d);
  const float* z = zxbcdt;
  conv_step(zxbcdt + E_, conv_old, conv_new, flat + L[CONV_W], at_off(flat, L[CONV_B]), xbc, CD, K_);
  const float* x = xbc;
  const float* Bv = xbc + E_;
  const float* Cv = Bv + G_ * N_;
  const float* dtv = zxbcdt + E_ + CD;
  const float* A_ = flat + L[A];
  const float* D_ = flat + L[D];
  const float* dtb = flat + L[DT_B];
  const int64_t heads_per_group = H_ / G_;
  for (int64_t h = 0; h < H_; ++h) {
    const float dth = softplus(dtv[h] + dtb[h]);
    const float a = std::exp(dth * A_[h]);
    const float* Bg = Bv + (h / heads_per_group) * N_;
    const float* Cg = Cv + (h / heads_per_group) * N_;
    for (int64_t p = 0; p < P_; ++p) {
      const float xv = x[h * P_ + p];
      const float dx = dth * xv;
      const float* ho = h_old + (h * P_ + p) * N_;
      float* hn = h_new + (h * P_ + p) * N_;
      float s = 0.f;
      for (int64_t n = 0; n < N_; ++n) {
        const float v = a * ho[n] + dx * Bg[n];
        hn[n] = v;
        s += v * Cg[n];
      }
      y[h * P_ + p] = (s + D_[h] * xv) * silu(z[h * P_ + p]);  // gate before the norm (norm_before_gate=False)
    }
  }
  const int64_t gs = E_ / G_;  // RMSNorm groups of d_inner / ngroups channels
  const float* nw = flat + L[NORM_W];
  for (int64_t g = 0; g < G_; ++g) {
    float ss = 0.f;
    for (int64_t i = 0; i < gs; ++i) ss += y[g * gs + i] * y[g * gs + i];
    const float inv = 1.f / std::sqrt(ss / gs + 1e-5f);
    for (int64_t i = 0; i < gs; ++i) y[g * gs + i] *= inv * nw[g * gs + i];
  }
  matvec(flat + L[OUT_W], at_off(flat, L[OUT_B]), y, out, d, E_);
}

}  // namespace

// items (B,) int64; flat (P,) float32; meta int64; conv_states / ssm_states: one float32 tensor per layer.
// Returns [h (B, d), new conv state per layer..., new ssm state per layer...]. Inputs are not modified.
std::vector<torch::Tensor> model_step(torch::Tensor items, torch::Tensor flat_t, torch::Tensor meta_t,
                                      std::vector<torch::Tensor> conv_states, std::vector<torch::Tensor> ssm_states) {
  TORCH_CHECK(flat_t.scalar_type() == torch::kFloat32 && flat_t.is_contiguous(), "flat weights: float32, contiguous");
  TORCH_CHECK(items.scalar_type() == torch::kInt64 && items.dim() == 1, "items: (B,) int64");
  items = items.contiguous();  // a column of a (B, L) history is strided
  const int64_t* M = meta_t.data_ptr<int64_t>();
  const int64_t n_layers = M[0], d = M[1], d_ff = M[2], residual = M[3];
  const int64_t off_emb = M[5], off_ln_w = M[6], off_ln_b = M[7];
  TORCH_CHECK((int64_t)conv_states.size() == n_layers && (int64_t)ssm_states.size() == n_layers,
              "one conv and one ssm state per layer");
  const int64_t Bsz = items.size(0);
  const float* flat = flat_t.data_ptr<float>();
  const int64_t* it = items.data_ptr<int64_t>();
  auto h = torch::empty({Bsz, d}, flat_t.options());
  std::vector<torch::Tensor> conv_new, ssm_new;
  std::vector<const float*> co, so;
  std::vector<float*> cn, sn;
  std::vector<int64_t> conv_stride, ssm_stride;
  for (int64_t l = 0; l < n_layers; ++l) {
    auto c = conv_states[l].contiguous();
    auto s = ssm_states[l].contiguous();
    TORCH_CHECK(c.scalar_type() == torch::kFloat32 && s.scalar_type() == torch::kFloat32, "states: float32");
    TORCH_CHECK(c.size(0) == Bsz && s.size(0) == Bsz, "states: batch size must match items");
    conv_states[l] = c;
    ssm_states[l] = s;
    conv_new.push_back(torch::empty_like(c));
    ssm_new.push_back(torch::empty_like(s));
    co.push_back(c.data_ptr<float>());
    so.push_back(s.data_ptr<float>());
    cn.push_back(conv_new.back().data_ptr<float>());
    sn.push_back(ssm_new.back().data_ptr<float>());
    conv_stride.push_back(c.numel() / std::max<int64_t>(Bsz, 1));
    ssm_stride.push_back(s.numel() / std::max<int64_t>(Bsz, 1));
  }
  float* hp = h.data_ptr<float>();
  auto body = [&](int64_t b0, int64_t b1) {
    FVec u(d), v(d), a(d), f(d_ff), o(d), buf;
    for (int64_t b = b0; b < b1; ++b) {
      layer_norm(flat + off_emb + it[b] * d, flat + off_ln_w, flat + off_ln_b, u.data(), d, 1e-5f);
      for (int64_t l = 0; l < n_layers; ++l) {
        const int64_t* L = M + kHeader + 3 + l * kLayerInts;
        const float* c_old = co[l] + b * conv_stride[l];
        float* c_new = cn[l] + b * conv_stride[l];
        const float* s_old = so[l] + b * ssm_stride[l];
        float* s_new = sn[l] + b * ssm_stride[l];
        if (L[KIND] == 0) mamba_block(flat, L, u.data(), c_old, c_new, s_old, s_new, o.data(), d, buf);
        else mamba2_block(flat, L, u.data(), c_old, c_new, s_old, s_new, o.data(), d, buf);
        if (residual) for (int64_t i = 0; i < d; ++i) o[i] += u[i];
        layer_norm(o.data(), flat + L[LN_W], flat + L[LN_B], a.data(), d, 1e-5f);
        matvec(flat + L[FF_W1], flat + L[FF_B1], a.data(), f.data(), d_ff, d);
        for (int64_t i = 0; i < d_ff; ++i) f[i] = gelu(f[i]);
        matvec(flat + L[FF_W2], flat + L[FF_B2], f.data(), v.data(), d, d_ff);
        for (int64_t i = 0; i < d; ++i) v[i] += a[i];
        layer_norm(v.data(), flat + L[FF_LN_W], flat + L[FF_LN_B], u.data(), d, 1e-5f);
      }
      std::copy(u.begin(), u.end(), hp + b * d);
    }
  };
  if (Bsz <= 4) body(0, Bsz);
  else at::parallel_for(0, Bsz, 1, body);
  std::vector<torch::Tensor> ret{h};
  ret.insert(ret.end(), conv_new.begin(), conv_new.end());
  ret.insert(ret.end(), ssm_new.begin(), ssm_new.end());
  return ret;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("model_step", &model_step, "one streaming step of a Mamba / Mamba2 recommender (CPU, float32, eval)");
  m.attr("header") = kHeader;
  m.attr("layer_ints") = kLayerInts;
}
