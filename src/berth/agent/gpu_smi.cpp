// The GPU signal in the static agent: `nvidia-smi` (a static binary cannot safely dlopen the
// machine's libnvidia-ml, which needs the machine's own libc).
#include "agent/signals.hpp"

#include "util/process.hpp"
#include "util/strings.hpp"

namespace berth::idle {

namespace {

class SmiProbe : public GpuProbe {
public:
    Result<std::optional<std::vector<double>>> utilisation() override {
        if (!proc::which("nvidia-smi")) return std::optional<std::vector<double>>{};
        auto r = proc::run(
            {"nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"},
            {.input = {}, .env = {}, .timeout = std::chrono::seconds(20)});
        if (!r) return tl::unexpected(r.error());
        if (r->status != 0) return fail("nvidia-smi failed: " + str::trim(r->err));
        std::vector<double> out;
        for (const auto &line : str::split(str::trim(r->out), '\n')) {
            auto v = str::trim(line);
            if (v.empty()) continue;
            try {
                out.push_back(std::stod(v));
            } catch (...) {
                return fail("nvidia-smi answered '" + v.substr(0, 30) + "'");
            }
        }
        return std::optional<std::vector<double>>(out);
    }
};

} // namespace

std::unique_ptr<GpuProbe> system_gpu_probe() {
    return std::make_unique<SmiProbe>();
}

} // namespace berth::idle
