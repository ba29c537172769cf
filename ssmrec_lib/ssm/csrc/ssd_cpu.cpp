// Mamba2 SSD recurrence for CPU: forward and backward (ssmrec, built by ssm/cpu_ext.py).
//
// Glossary (as in ssm/ssd.py): X (b, l, h, p) input per head; dt (b, l, h) step size, already biased and
// softplus-ed by the caller; A (h,) one negative scalar per head; B, C (b, l, g, n), head i reads group
// i / (h / g); S (p, n) the state of one (batch row, head); S0 (b, h, p, n) optional initial states.
//   a_t = exp(dt_t A)                       ONE decay per (row, head, step): A is a scalar times identity
//   S_t = a_t S_{t-1} + dt_t x_t B_t^T      (p x n outer product)
//   y_t = S_t C_t                           (D x and the gate silu(z) are added by the caller, in PyTorch)
// This is the SSD's recurrent form: exact, so no chunk size enters (the chunked form of ssd.py computes the
// same y with a different rounding order).
//
// Forward: one (row, head) per task, parallel over b * h; the state (p x n, 8 KiB at p = 32, n = 64 fp32)
// stays in L1 and every inner loop runs over the contiguous n.
// Backward: recomputes the states of one (row, head) into a thread-local (l + 1) x p x n buffer (the forward
// saves only its inputs), then runs the adjoint recurrence backwards in time with G = dLoss/dS_t:
//   G_t   = a_{t+1} G_{t+1} + dy_t C_t^T                (G after the last step = d final state)
//   dC_t  = S_t^T dy_t;  dB_t = G_t^T (dt_t x_t);  dx_t = dt_t G_t B_t
//   da_t  = <G_t, S_{t-1}>;  ddt_t = x_t . (G_t B_t) + da_t A a_t;  dA += da_t dt_t a_t;  dS0 = a_1 G_1
// dB, dC are shared by the heads of a group, so each task writes its own (row, head) slice and the caller sums
// the heads of each group: no two threads write the same memory.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "aligned_alloc.h"

namespace {

using ssmrec::AVec;  // 64-byte aligned scratch: bit-reproducible fast-math reductions (aligned_alloc.h)

// One step of one (row, head): S = a * Sprev + (dt x) B^T; y = S C.  Sprev may equal S (in place).
template <typename T>
inline void step_fwd(T* S, const T* Sprev, const T* __restrict x, const T* __restrict B, const T* __restrict C,
                     T a, T dt, T* __restrict y, int64_t P, int64_t N) {
  for (int64_t p = 0; p < P; ++p) {
    const T xs = dt * x[p];
    T* Sp = S + p * N;
    const T* Spp = Sprev + p * N;
    T acc = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T s = a * Spp[n] + xs * B[n];
      Sp[n] = s;
      acc += s * C[n];
    }
    y[p] = acc;
  }
}

template <typename T>
void fwd_kernel(const T* __restrict X, const T* __restrict dt, const T* __restrict A, const T* __restrict B,
                const T* __restrict C, const T* S0, T* __restrict y, T* __restrict last, int64_t Bsz, int64_t L,
                int64_t H, int64_t P, int64_t G, int64_t N) {
  const int64_t R = H / G;  // heads per group
  at::parallel_for(0, Bsz * H, 1, [&](int64_t begin, int64_t end) {
    AVec<T> S(P * N);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H, g = h / R;
      if (S0) std::copy(S0 + bh * P * N, S0 + (bh + 1) * P * N, S.begin());
      else std::fill(S.begin(), S.end(), T(0));
      const T Ah = A[h];
      for (int64_t t = 0; t < L; ++t) {
        const int64_t bt = b * L + t;
        const T d = dt[bt * H + h];
        step_fwd<T>(S.data(), S.data(), X + (bt * H + h) * P, B + (bt * G + g) * N, C + (bt * G + g) * N,
                    std::exp(d * Ah), d, y + (bt * H + h) * P, P, N);
      }
      std::copy(S.begin(), S.end(), last + bh * P * N);
    }
  });
}

template <typename T>
void bwd_kernel(const T* __restrict dy, const T* dlast, const T* __restrict X, const T* __restrict dt,
                const T* __restrict A, const T* __restrict B, const T* __restrict C, const T* S0,
                T* __restrict dX, T* __restrict ddt, T* __restrict dA_part, T* __restrict dB_part,
                T* __restrict dC_part, T* dS0, int64_t Bsz, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N) {
  const int64_t R = H / G;
  const int64_t PN = P * N;
  at::parallel_for(0, Bsz * H, 1, [&](int64_t begin, int64_t end) {
    AVec<T> Sall((L + 1) * PN), Gm(PN), ybuf(P), avec(L), xs(P);
    T* __restrict Gp = Gm.data();
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H, g = h / R;
      const T Ah = A[h];
      // 1. recompute a_t and the states S_0 .. S_L (row 0 of Sall is the initial state)
      T* Sp0 = Sall.data();
      if (S0) std::copy(S0 + bh * PN, S0 + (bh + 1) * PN, Sp0);
      else std::fill(Sp0, Sp0 + PN, T(0));
      for (int64_t t = 0; t < L; ++t) {
        const int64_t bt = b * L + t;
        const T d = dt[bt * H + h];
        avec[t] = std::exp(d * Ah);
        step_fwd<T>(Sp0 + (t + 1) * PN, Sp0 + t * PN, X + (bt * H + h) * P, B + (bt * G + g) * N,
                    C + (bt * G + g) * N, avec[t], d, ybuf.data(), P, N);
      }
      // 2. adjoint recurrence backwards in time
      if (dlast) std::copy(dlast + bh * PN, dlast + (bh + 1) * PN, Gp);
      else std::fill(Gp, Gp + PN, T(0));
      T dA_acc = 0;
      T* dBh = dB_part + bh * L * N;  // this task's (row, head) slice, (l, n)
      T* dCh = dC_part + bh * L * N;
      for (int64_t t = L - 1; t >= 0; --t) {
        const int64_t bt = b * L + t;
        const T d = dt[bt * H + h];
        const T a = avec[t];
        const T* __restrict x = X + (bt * H + h) * P;
        const T* __restrict Bt = B + (bt * G + g) * N;
        const T* __restrict Ct = C + (bt * G + g) * N;
        const T* __restrict dyt = dy + (bt * H + h) * P;
        const T* St = Sp0 + (t + 1) * PN;
        const T* Sprev = Sp0 + t * PN;
        T* __restrict dBt = dBh + t * N;
        T* __restrict dCt = dCh + t * N;
        T* __restrict dXt = dX + (bt * H + h) * P;
        for (int64_t n = 0; n < N; ++n) {
          dBt[n] = 0;
          dCt[n] = 0;
        }
        T da = 0, xGB = 0;
        for (int64_t p = 0; p < P; ++p) {
          const T dyp = dyt[p];
          const T xsp = d * x[p];
          T* __restrict Gr = Gp + p * N;
          const T* __restrict Sr = St + p * N;
          const T* __restrict Spr = Sprev + p * N;
          T gb = 0, gs = 0;
          for (int64_t n = 0; n < N; ++n) {
            const T gn = Gr[n] + dyp * Ct[n];  // G_t
            dCt[n] += dyp * Sr[n];
            dBt[n] += gn * xsp;
            gb += gn * Bt[n];
            gs += gn * Spr[n];
            Gr[n] = gn * a;  // a_t G_t, the part of G_{t-1} that flows through the decay
          }
          dXt[p] = d * gb;
          xGB += x[p] * gb;
          da += gs;
        }
        ddt[bt * H + h] = xGB + da * Ah * a;
        dA_acc += da * d * a;
      }
      dA_part[bh] = dA_acc;
      if (dS0) std::copy(Gp, Gp + PN, dS0 + bh * PN);
    }
  });
}

template <typename T>
const T* opt_ptr(const torch::Tensor& t) { return t.numel() ? t.data_ptr<T>() : nullptr; }

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.numel() == 0 || t.is_contiguous(), name, " must be contiguous");
}

}  // namespace

// X (b, l, h, p); dt (b, l, h); A (h,); B, C (b, l, g, n); S0 (b, h, p, n) or empty. Returns y, final states.
std::vector<torch::Tensor> ssd_fwd(torch::Tensor X, torch::Tensor dt, torch::Tensor A, torch::Tensor B,
                                   torch::Tensor C, torch::Tensor S0) {
  for (auto& q : {std::make_pair(X, "X"), std::make_pair(dt, "dt"), std::make_pair(A, "A"), std::make_pair(B, "B"),
                  std::make_pair(C, "C"), std::make_pair(S0, "initial_states")})
    check(q.first, q.second);
  const int64_t Bsz = X.size(0), L = X.size(1), H = X.size(2), P = X.size(3), G = B.size(2), N = B.size(3);
  TORCH_CHECK(H % G == 0, "ngroups must divide nheads");
  auto y = torch::empty_like(X);
  auto last = torch::empty({Bsz, H, P, N}, X.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "ssd_fwd", [&] {
    fwd_kernel<scalar_t>(X.data_ptr<scalar_t>(), dt.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(),
                         B.data_ptr<scalar_t>(), C.data_ptr<scalar_t>(), opt_ptr<scalar_t>(S0),
                         y.data_ptr<scalar_t>(), last.data_ptr<scalar_t>(), Bsz, L, H, P, G, N);
  });
  return {y, last};
}

// Returns dX, ddt, dA_part (b, h), dB_part, dC_part (b, h, l, n) (per head: the caller sums the heads of each
// group), dS0 (b, h, p, n) or empty.
std::vector<torch::Tensor> ssd_bwd(torch::Tensor dy, torch::Tensor dlast, torch::Tensor X, torch::Tensor dt,
                                   torch::Tensor A, torch::Tensor B, torch::Tensor C, torch::Tensor S0) {
  for (auto& q : {std::make_pair(dy, "dy"), std::make_pair(dlast, "dlast"), std::make_pair(X, "X"),
                  std::make_pair(dt, "dt"), std::make_pair(A, "A"), std::make_pair(B, "B"), std::make_pair(C, "C"),
                  std::make_pair(S0, "initial_states")})
    check(q.first, q.second);
  const int64_t Bsz = X.size(0), L = X.size(1), H = X.size(2), P = X.size(3), G = B.size(2), N = B.size(3);
  auto dX = torch::empty_like(X);
  auto ddt = torch::empty_like(dt);
  auto dA_part = torch::empty({Bsz, H}, X.options());
  auto dB_part = torch::empty({Bsz, H, L, N}, X.options());
  auto dC_part = torch::empty({Bsz, H, L, N}, X.options());
  auto dS0 = S0.numel() ? torch::empty_like(S0) : torch::empty({0}, X.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "ssd_bwd", [&] {
    bwd_kernel<scalar_t>(dy.data_ptr<scalar_t>(), opt_ptr<scalar_t>(dlast), X.data_ptr<scalar_t>(),
                         dt.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(), B.data_ptr<scalar_t>(),
                         C.data_ptr<scalar_t>(), opt_ptr<scalar_t>(S0), dX.data_ptr<scalar_t>(),
                         ddt.data_ptr<scalar_t>(), dA_part.data_ptr<scalar_t>(), dB_part.data_ptr<scalar_t>(),
                         dC_part.data_ptr<scalar_t>(), S0.numel() ? dS0.data_ptr<scalar_t>() : nullptr, Bsz, L, H,
                         P, G, N);
  });
  return {dX, ddt, dA_part, dB_part, dC_part, dS0};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fwd", &ssd_fwd, "SSD recurrence forward (CPU)");
  m.def("bwd", &ssd_bwd, "SSD recurrence backward (CPU)");
}
