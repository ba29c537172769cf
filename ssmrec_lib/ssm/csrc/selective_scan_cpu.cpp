// Fused Mamba1 selective scan for CPU: forward and backward (ssmrec, built by ssm/cpu_ext.py).
//
// Glossary (as in ssm/scan.py):  u, delta, z (Bsz, D, L);  A (D, N);  Bt, Ct (Bsz, L, N) = B, C transposed so
// the state index n is contiguous;  Dskip (D,);  delta_bias (D,).
//   dt   = softplus(delta + delta_bias)   (softplus optional)
//   Ab_t = exp(dt_t * A)                  ZOH for A
//   h_t  = Ab_t * h_{t-1} + dt_t * B_t * u_t     Euler for B, as Mamba does
//   out_t = C_t . h_t + Dskip * u_t;   y_t = out_t * silu(z_t)
//
// Forward: one (batch, channel) pair per task, state h[N] in registers/L1; parallel over Bsz * D.
// Backward: recomputes the states of one channel into a thread-local (L+1) x N buffer (nothing but the inputs is
// saved by the forward), then runs the adjoint recurrence backwards in time:
//   g_t = dout_t * C_t + Ab_{t+1} * g_{t+1}   (g = dLoss/dh_t, starting from dLoss/dh_L = d_last_state)
//   dB_t += g_t dt_t u_t;  dC_t += dout_t h_t;  du_t += g_t . (dt_t B_t) + dout_t Dskip
//   ddt_t = g_t . (B_t u_t + A Ab_t h_{t-1});  dA += g_t dt_t Ab_t h_{t-1}
// dB, dC are sums over channels of one batch row, so the backward is parallel over the batch (no races);
// dA, dD, d_delta_bias are written per batch row and summed over the batch by the caller.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

template <typename T>
inline T softplus(T x) { return x > T(20) ? x : std::log1p(std::exp(x)); }

template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

template <typename T>
void fwd_kernel(const T* __restrict u, const T* __restrict delta, const T* __restrict A, const T* __restrict Bt,
                const T* __restrict Ct, const T* Dskip, const T* z, const T* dbias, bool use_softplus,
                T* __restrict y, T* __restrict last, int64_t Bsz, int64_t Dm, int64_t L, int64_t N) {
  at::parallel_for(0, Bsz * Dm, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> h(N);
    for (int64_t bd = begin; bd < end; ++bd) {
      const int64_t b = bd / Dm, d = bd % Dm;
      const T* ub = u + bd * L;
      const T* db = delta + bd * L;
      const T* Ad = A + d * N;
      const T* Bb = Bt + b * L * N;
      const T* Cb = Ct + b * L * N;
      T* yb = y + bd * L;
      T* hp = h.data();
      std::fill(h.begin(), h.end(), T(0));
      const T bias = dbias ? dbias[d] : T(0);
      const T Dd = Dskip ? Dskip[d] : T(0);
      for (int64_t t = 0; t < L; ++t) {
        T dt = db[t] + bias;
        if (use_softplus) dt = softplus(dt);
        const T dtu = dt * ub[t];
        const T* Bn = Bb + t * N;
        const T* Cn = Cb + t * N;
        T acc = 0;
        for (int64_t n = 0; n < N; ++n) {
          hp[n] = std::exp(dt * Ad[n]) * hp[n] + dtu * Bn[n];
          acc += Cn[n] * hp[n];
        }
        T out = acc + Dd * ub[t];
        if (z) {
          const T zz = z[bd * L + t];
          out *= zz * sigmoid(zz);
        }
        yb[t] = out;
      }
      for (int64_t n = 0; n < N; ++n) last[bd * N + n] = hp[n];
    }
  });
}

template <typename T>
void bwd_kernel(const T* __restrict dy, const T* dlast, const T* __restrict u, const T* __restrict delta,
                const T* __restrict A, const T* __restrict Bt, const T* __restrict Ct, const T* Dskip, const T* z,
                const T* dbias, bool use_softplus, T* __restrict du, T* __restrict ddelta, T* __restrict dA_part,
                T* __restrict dBt, T* __restrict dCt, T* dD_part, T* dz, T* dbias_part, int64_t Bsz, int64_t Dm,
                int64_t L, int64_t N) {
  at::parallel_for(0, Bsz, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> H((L + 1) * N), Ab(L * N), dts(L), g(N), dA_loc(N);
    for (int64_t b = begin; b < end; ++b) {
      const T* Bb = Bt + b * L * N;
      const T* Cb = Ct + b * L * N;
      T* dBb = dBt + b * L * N;
      T* dCb = dCt + b * L * N;
      for (int64_t d = 0; d < Dm; ++d) {
        const int64_t bd = b * Dm + d;
        const T* ub = u + bd * L;
        const T* Ad = A + d * N;
        const T bias = dbias ? dbias[d] : T(0);
        const T Dd = Dskip ? Dskip[d] : T(0);
        // 1. recompute dt, Ab and the states h_0..h_L (H row 0 is h_0 = 0)
        T* Hp = H.data();
        T* Abp = Ab.data();
        for (int64_t n = 0; n < N; ++n) Hp[n] = 0;
        for (int64_t t = 0; t < L; ++t) {
          T dt = delta[bd * L + t] + bias;
          if (use_softplus) dt = softplus(dt);
          dts[t] = dt;
          const T dtu = dt * ub[t];
          const T* Bn = Bb + t * N;
          const T* hprev = Hp + t * N;
          T* hcur = Hp + (t + 1) * N;
          T* at = Abp + t * N;
          for (int64_t n = 0; n < N; ++n) {
            at[n] = std::exp(dt * Ad[n]);
            hcur[n] = at[n] * hprev[n] + dtu * Bn[n];
          }
        }
        // 2. adjoint recurrence backwards in time
        T* gp = g.data();
        T* dAl = dA_loc.data();
        for (int64_t n = 0; n < N; ++n) {
          gp[n] = dlast ? dlast[bd * N + n] : T(0);
          dAl[n] = 0;
        }
        T dD_acc = 0, dbias_acc = 0;
        for (int64_t t = L - 1; t >= 0; --t) {
          const T dt = dts[t];
          const T ut = ub[t];
          const T* Bn = Bb + t * N;
          const T* Cn = Cb + t * N;
          const T* hcur = Hp + (t + 1) * N;
          const T* hprev = Hp + t * N;
          const T* at = Abp + t * N;
          T dout = dy[bd * L + t];
          if (z) {
            T acc = 0;
            for (int64_t n = 0; n < N; ++n) acc += Cn[n] * hcur[n];
            const T out = acc + Dd * ut;
            const T zz = z[bd * L + t];
            const T sz = sigmoid(zz);
            dz[bd * L + t] = dout * out * sz * (T(1) + zz * (T(1) - sz));
            dout *= zz * sz;
          }
          dD_acc += dout * ut;
          const T dtu = dt * ut;
          T du_acc = 0, ddt_acc = 0;
          T* dBn = dBb + t * N;
          T* dCn = dCb + t * N;
          for (int64_t n = 0; n < N; ++n) {
            const T gn = gp[n] + dout * Cn[n];  // dLoss/dh_t
            dCn[n] += dout * hcur[n];
            dBn[n] += gn * dtu;
            du_acc += gn * Bn[n];
            const T ah = at[n] * hprev[n];
            ddt_acc += gn * (Bn[n] * ut + Ad[n] * ah);
            dAl[n] += gn * dt * ah;
            gp[n] = gn * at[n];  // propagate to h_{t-1}
          }
          du[bd * L + t] = du_acc * dt + dout * Dd;
          T ddl = ddt_acc;
          if (use_softplus) ddl *= sigmoid(delta[bd * L + t] + bias);
          ddelta[bd * L + t] = ddl;
          dbias_acc += ddl;
        }
        for (int64_t n = 0; n < N; ++n) dA_part[bd * N + n] = dAl[n];
        if (dD_part) dD_part[bd] = dD_acc;
        if (dbias_part) dbias_part[bd] = dbias_acc;
      }
    }
  });
}

template <typename T>
const T* opt_ptr(const torch::Tensor& t) { return t.numel() ? t.data_ptr<T>() : nullptr; }

template <typename T>
T* opt_mut(torch::Tensor& t) { return t.numel() ? t.data_ptr<T>() : nullptr; }

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.numel() == 0 || t.is_contiguous(), name, " must be contiguous");
}

}  // namespace

// u, delta, z: (Bsz, D, L); A: (D, N); Bt, Ct: (Bsz, L, N); Dskip, delta_bias: (D,); empty tensors = absent.
std::vector<torch::Tensor> selective_scan_fwd(torch::Tensor u, torch::Tensor delta, torch::Tensor A, torch::Tensor Bt,
                                              torch::Tensor Ct, torch::Tensor Dskip, torch::Tensor z,
                                              torch::Tensor dbias, bool use_softplus) {
  for (auto& p : {std::make_pair(u, "u"), std::make_pair(delta, "delta"), std::make_pair(A, "A"),
                  std::make_pair(Bt, "B"), std::make_pair(Ct, "C"), std::make_pair(Dskip, "D"),
                  std::make_pair(z, "z"), std::make_pair(dbias, "delta_bias")})
    check(p.first, p.second);
  const int64_t Bsz = u.size(0), Dm = u.size(1), L = u.size(2), N = A.size(1);
  auto y = torch::empty_like(u);
  auto last = torch::empty({Bsz, Dm, N}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_fwd", [&] {
    fwd_kernel<scalar_t>(u.data_ptr<scalar_t>(), delta.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(),
                         Bt.data_ptr<scalar_t>(), Ct.data_ptr<scalar_t>(), opt_ptr<scalar_t>(Dskip),
                         opt_ptr<scalar_t>(z), opt_ptr<scalar_t>(dbias), use_softplus, y.data_ptr<scalar_t>(),
                         last.data_ptr<scalar_t>(), Bsz, Dm, L, N);
  });
  return {y, last};
}

// Returns du, ddelta, dA_part (Bsz, D, N), dBt, dCt, dD_part (Bsz, D), dz, dbias_part (Bsz, D).
std::vector<torch::Tensor> selective_scan_bwd(torch::Tensor dy, torch::Tensor dlast, torch::Tensor u,
                                              torch::Tensor delta, torch::Tensor A, torch::Tensor Bt,
                                              torch::Tensor Ct, torch::Tensor Dskip, torch::Tensor z,
                                              torch::Tensor dbias, bool use_softplus) {
  for (auto& p : {std::make_pair(dy, "dy"), std::make_pair(dlast, "dlast"), std::make_pair(u, "u"),
                  std::make_pair(delta, "delta"), std::make_pair(A, "A"), std::make_pair(Bt, "B"),
                  std::make_pair(Ct, "C"), std::make_pair(Dskip, "D"), std::make_pair(z, "z"),
                  std::make_pair(dbias, "delta_bias")})
    check(p.first, p.second);
  const int64_t Bsz = u.size(0), Dm = u.size(1), L = u.size(2), N = A.size(1);
  auto du = torch::empty_like(u);
  auto ddelta = torch::empty_like(u);
  auto dA_part = torch::empty({Bsz, Dm, N}, u.options());
  auto dBt = torch::zeros_like(Bt);
  auto dCt = torch::zeros_like(Ct);
  auto dD_part = Dskip.numel() ? torch::empty({Bsz, Dm}, u.options()) : torch::empty({0}, u.options());
  auto dz = z.numel() ? torch::empty_like(z) : torch::empty({0}, u.options());
  auto dbias_part = dbias.numel() ? torch::empty({Bsz, Dm}, u.options()) : torch::empty({0}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_bwd", [&] {
    bwd_kernel<scalar_t>(dy.data_ptr<scalar_t>(), opt_ptr<scalar_t>(dlast), u.data_ptr<scalar_t>(),
                         delta.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(), Bt.data_ptr<scalar_t>(),
                         Ct.data_ptr<scalar_t>(), opt_ptr<scalar_t>(Dskip), opt_ptr<scalar_t>(z),
                         opt_ptr<scalar_t>(dbias), use_softplus, du.data_ptr<scalar_t>(),
                         ddelta.data_ptr<scalar_t>(), dA_part.data_ptr<scalar_t>(), dBt.data_ptr<scalar_t>(),
                         dCt.data_ptr<scalar_t>(), opt_mut<scalar_t>(dD_part), opt_mut<scalar_t>(dz),
                         opt_mut<scalar_t>(dbias_part), Bsz, Dm, L, N);
  });
  return {du, ddelta, dA_part, dBt, dCt, dD_part, dz, dbias_part};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fwd", &selective_scan_fwd, "selective scan forward (CPU)");
  m.def("bwd", &selective_scan_bwd, "selective scan backward (CPU)");
}
