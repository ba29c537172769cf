// 64-byte aligned scratch buffers for the package's C++ kernels (selective_scan_cpu.cpp, stream_step_cpu.cpp).
//
// With -ffast-math gcc may reassociate vectorised reductions (dot products over N), and how it peels a loop to
// reach an aligned address depends on the buffer's address. With std::allocator (16-byte alignment) two calls on
// the same inputs could then round differently (the scan's backward failed gradcheck's reentrancy check in 12 of
// 300 runs). A fixed 64-byte alignment makes every call take the same path, so outputs are bit-reproducible.
#pragma once

#include <cstdlib>
#include <new>
#include <vector>

namespace ssmrec {

template <typename T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <typename U> Aligned64(const Aligned64<U>&) {}
  T* allocate(std::size_t n) {
    const std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes ? bytes : 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { std::free(p); }
  template <typename U> bool operator==(const Aligned64<U>&) const { return true; }
  template <typename U> bool operator!=(const Aligned64<U>&) const { return false; }
};

template <typename T>
using AVec = std::vector<T, Aligned64<T>>;

}  // namespace ssmrec
