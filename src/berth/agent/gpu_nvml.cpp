// The GPU signal in the dynamic build: NVML, loaded at run time (no CUDA at build time, and a
// machine without NVIDIA's driver simply has no GPU signal).
#include "agent/signals.hpp"

#include <dlfcn.h>
#include <mutex>

namespace berth::idle {

namespace {

struct NvmlUtilization {
    unsigned int gpu, memory;
};
using InitFn = int (*)();
using CountFn = int (*)(unsigned int *);
using HandleFn = int (*)(unsigned int, void **);
using UtilFn = int (*)(void *, NvmlUtilization *);

class NvmlProbe : public GpuProbe {
public:
    Result<std::optional<std::vector<double>>> utilisation() override {
        if (!m_loaded) {
            m_loaded = true;
            m_lib = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
            if (m_lib) {
                auto init = reinterpret_cast<InitFn>(::dlsym(m_lib, "nvmlInit_v2"));
                m_count = reinterpret_cast<CountFn>(::dlsym(m_lib, "nvmlDeviceGetCount_v2"));
                m_handle =
                    reinterpret_cast<HandleFn>(::dlsym(m_lib, "nvmlDeviceGetHandleByIndex_v2"));
                m_util = reinterpret_cast<UtilFn>(::dlsym(m_lib, "nvmlDeviceGetUtilizationRates"));
                m_init_rc = init && m_count && m_handle && m_util ? init() : -1;
            }
        }
        if (!m_lib) return std::optional<std::vector<double>>{};
        if (m_init_rc != 0)
            return fail("NVML is there but does not start (code " + std::to_string(m_init_rc) +
                        ")");
        unsigned int n = 0;
        if (int rc = m_count(&n); rc != 0)
            return fail("NVML cannot count GPUs (code " + std::to_string(rc) + ")");
        std::vector<double> out;
        for (unsigned int i = 0; i < n; ++i) {
            void *h = nullptr;
            NvmlUtilization u{};
            if (m_handle(i, &h) != 0 || m_util(h, &u) != 0)
                return fail("NVML cannot read GPU " + std::to_string(i));
            out.push_back(u.gpu);
        }
        return std::optional<std::vector<double>>(out);
    }

private:
    bool m_loaded = false;
    void *m_lib = nullptr;
    int m_init_rc = -1;
    CountFn m_count = nullptr;
    HandleFn m_handle = nullptr;
    UtilFn m_util = nullptr;
};

} // namespace

std::unique_ptr<GpuProbe> system_gpu_probe() {
    return std::make_unique<NvmlProbe>();
}

} // namespace berth::idle
