// ModuleGlobals.*: device pointers a program copies into a module's global
// (cudaMemcpyToSymbol of a struct of buffers, a table of layer weights). The
// module's kernels read what they point to without any parameter saying so:
// the launch scan sees nothing, and a weight held compressed meets the
// kernel unmapped (an illegal address) unless the copy into the global told
// neuzip to keep it mapped.
#include <cstdlib>
#include <memory>
#include <vector>

#include "fw_env.h"

namespace fw {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

struct Table {  // as fw_kernels_globals.cpp reads it
  uint64_t bytes;
  uint64_t ptr;
};

// fw_kernels_globals loaded as a module or as a library: its kernel and its global.
class GlobalsModule {
 public:
  explicit GlobalsModule(bool as_library) {
    Env::get();
    const char* path = std::getenv("FW_GLOBALS_MODULE");
    EXPECT_NE(nullptr, path);
    if (as_library) {
      EXPECT_EQ(CUDA_SUCCESS, cuLibraryLoadFromFile(&library_, path, nullptr, nullptr, 0, nullptr, nullptr, 0));
      CUkernel k = nullptr;
      EXPECT_EQ(CUDA_SUCCESS, cuLibraryGetKernel(&k, library_, "sum_through_table"));
      fn_ = reinterpret_cast<CUfunction>(k);
      EXPECT_EQ(CUDA_SUCCESS, cuLibraryGetGlobal(&table_, &table_bytes_, library_, "table"));
    } else {
      EXPECT_EQ(CUDA_SUCCESS, cuModuleLoad(&module_, path));
      EXPECT_EQ(CUDA_SUCCESS, cuModuleGetFunction(&fn_, module_, "sum_through_table"));
      EXPECT_EQ(CUDA_SUCCESS, cuModuleGetGlobal(&table_, &table_bytes_, module_, "table"));
      // The driver's own answers pass through: one out-pointer is enough, none is an error.
      size_t only = 0;
      EXPECT_EQ(CUDA_SUCCESS, cuModuleGetGlobal(nullptr, &only, module_, "table"));
      EXPECT_EQ(table_bytes_, only);
      EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuModuleGetGlobal(nullptr, nullptr, module_, "table"));
    }
    out_ = alloc(64);
  }
  ~GlobalsModule() {
    unload();
    cuMemFree(out_);
  }
  GlobalsModule(const GlobalsModule&) = delete;
  GlobalsModule& operator=(const GlobalsModule&) = delete;

  // cudaMemcpyToSymbol(table, &{bytes, p}), with the host-to-device kind
  // (cuMemcpyHtoD) or the default one (a unified cuMemcpy).
  void point_at(CUdeviceptr p, uint64_t bytes, bool unified = false) const {
    const Table t{bytes, p};
    EXPECT_GE(table_bytes_, sizeof t);
    if (unified) EXPECT_EQ(CUDA_SUCCESS, cuMemcpy(table_, reinterpret_cast<CUdeviceptr>(&t), sizeof t));
    else EXPECT_EQ(CUDA_SUCCESS, cuMemcpyHtoD(table_, &t, sizeof t));
  }
  // The kernel's hash of what the table points to (no pointer among its parameters but `out`).
  uint64_t sum() const { return launch_and_read(fn_, {const_cast<CUdeviceptr*>(&out_)}, out_); }
  void unload() {
    if (module_ != nullptr) EXPECT_EQ(CUDA_SUCCESS, cuModuleUnload(module_));
    if (library_ != nullptr) EXPECT_EQ(CUDA_SUCCESS, cuLibraryUnload(library_));
    module_ = nullptr;
    library_ = nullptr;
  }

 private:
  CUmodule module_ = nullptr;
  CUlibrary library_ = nullptr;
  CUfunction fn_ = nullptr;
  CUdeviceptr table_ = 0, out_ = 0;
  size_t table_bytes_ = 0;
};

uint64_t decompressions() { return Env::get().neuzip() ? Env::get().stats().decompressions : 0; }

// Decompressions a plain read of `w` costs now: 0 while it is staged.
uint64_t decodes_to_read(const Weight& w) {
  const uint64_t before = decompressions();
  EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
  return decompressions() - before;
}

// Other weights read one after another under the 4 MiB budget: whatever
// neuzip may evict, it does.
void read_others(const std::vector<std::unique_ptr<Weight>>& others) {
  for (const auto& o : others) EXPECT_EQ(o->hash(), device_hash(o->dev, o->host.size()));
}

// The weight is loaded and compressed before the module points at it, and
// read through the global only after other weights came and went. Once the
// module is unloaded, nothing reads it that way any more: it is compressed
// again under pressure.
TEST(ModuleGlobals, AKernelReadsAWeightThroughItsModulesGlobal) {
  for (const bool as_library : {false, true}) {
    SCOPED_TRACE(as_library ? "cuLibraryLoadFromFile + cuLibraryGetGlobal" : "cuModuleLoad + cuModuleGetGlobal");
    Weight w(6 * kMiB, 150);
    std::vector<std::unique_ptr<Weight>> others;
    for (uint32_t i = 0; i < 3; ++i) others.push_back(std::make_unique<Weight>(4 * kMiB, 151 + i));
    Env::get().flush();
    EXPECT_COMPRESSED_AT_LEAST(18 * kMiB);  // the weight too
    GlobalsModule g(as_library);
    g.point_at(w.dev, w.host.size());
    read_others(others);
    EXPECT_EQ(w.hash(), g.sum()) << "the kernel read the weight through the global";
    read_others(others);
    EXPECT_EQ(0u, decodes_to_read(w)) << "the weight was evicted while its module's global pointed at it";
    g.unload();
    read_others(others);
    if (Env::get().neuzip()) EXPECT_GT(decodes_to_read(w), 0u) << "the weight stayed pinned after its module was unloaded";
  }
}

// The global re-pointed at another weight: both stay readable through it
// (a kernel queued before the copy may still read the first); freeing the
// first while the module is loaded drops its pin with it.
TEST(ModuleGlobals, ARepointedGlobalReadsEachWeightWhole) {
  Weight a(4 * kMiB, 160), b(6 * kMiB, 161);
  std::vector<std::unique_ptr<Weight>> others;
  for (uint32_t i = 0; i < 3; ++i) others.push_back(std::make_unique<Weight>(4 * kMiB, 162 + i));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(22 * kMiB);  // a and b too
  GlobalsModule g(false);
  g.point_at(a.dev, a.host.size());
  EXPECT_EQ(a.hash(), g.sum());
  g.point_at(b.dev, b.host.size(), true);
  read_others(others);
  EXPECT_EQ(b.hash(), g.sum());
  g.point_at(a.dev, a.host.size());
  read_others(others);
  EXPECT_EQ(a.hash(), g.sum());
  // Not through the global: a plain read of b is right too.
  EXPECT_EQ(b.hash(), device_hash(b.dev, b.host.size()));
}

}  // namespace
}  // namespace fw
