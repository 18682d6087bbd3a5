// Paperspace machine types and prices, from ../shared/paperspace/data/machine_types.csv (recorded
// 2026-12-01; sources and dates in that directory's README). The v1 API has no price list:
// these are what `berth offers` and the cost model use; the API says which are available.
#include "provider/paperspace/paperspace_api.hpp"

namespace berth::paperspace {

const std::vector<MachineType> &machine_types() {
    static const std::vector<MachineType> t = {
        {"C1", "none", 0, 0, 1, 0.5, 0.0045, {"NY2", "AMS1", "CA1"}},
        {"C3", "none", 0, 0, 2, 2, 0.018, {"NY2", "AMS1", "CA1"}},
        {"C4", "none", 0, 0, 2, 4, 0.04, {"NY2", "AMS1", "CA1"}},
        {"C5", "none", 0, 0, 4, 8, 0.08, {"NY2", "AMS1", "CA1"}},
        {"C6", "none", 0, 0, 8, 16, 0.16, {"NY2", "AMS1", "CA1"}},
        {"C7", "none", 0, 0, 12, 30, 0.30, {"NY2", "AMS1", "CA1"}},
        {"C8", "none", 0, 0, 16, 60, 0.60, {"NY2", "AMS1", "CA1"}},
        {"C9", "none", 0, 0, 24, 120, 0.90, {"NY2", "AMS1", "CA1"}},
        {"C10", "none", 0, 0, 32, 244, 1.60, {"NY2", "AMS1", "CA1"}},
        {"GPU+", "Quadro M4000", 1, 8, 8, 30, 0.45, {"NY2", "AMS1"}},
        {"P4000", "Quadro P4000", 1, 8, 8, 30, 0.51, {"NY2", "AMS1", "CA1"}},
        {"P5000", "Quadro P5000", 1, 16, 8, 30, 0.78, {"NY2", "AMS1", "CA1"}},
        {"P6000", "Quadro P6000", 1, 24, 8, 30, 1.10, {"NY2", "AMS1", "CA1"}},
        {"RTX4000", "Quadro RTX4000", 1, 8, 8, 30, 0.56, {"NY2", "AMS1", "CA1"}},
        {"RTX5000", "Quadro RTX5000", 1, 16, 8, 30, 0.82, {"NY2"}},
        {"A4000", "Ampere A4000", 1, 16, 8, 45, 0.76, {"NY2", "AMS1", "CA1"}},
        {"A5000", "Ampere A5000", 1, 24, 8, 45, 1.38, {"NY2", "CA1"}},
        {"A6000", "Ampere A6000", 1, 48, 8, 45, 1.89, {"NY2", "CA1"}},
        {"V100", "Tesla V100", 1, 16, 8, 30, 2.30, {"NY2", "AMS1"}},
        {"V100-32G", "Tesla V100 32G", 1, 32, 8, 30, 2.30, {"NY2"}},
        {"A100", "Ampere A100", 1, 40, 12, 90, 3.09, {"NY2"}},
        {"A100-80G", "Ampere A100 80G", 1, 80, 12, 90, 3.18, {"NY2"}},
        {"H100", "Hopper H100", 1, 80, 20, 250, 5.95, {"NY2"}},
        {"GPU+x2", "Quadro M4000", 2, 8, 16, 60, 0.90, {"NY2", "AMS1"}},
        {"GPU+x4", "Quadro M4000", 4, 8, 32, 120, 1.80, {"NY2", "AMS1"}},
        {"P4000x2", "Quadro P4000", 2, 8, 16, 60, 1.02, {"NY2", "AMS1", "CA1"}},
        {"P4000x4", "Quadro P4000", 4, 8, 32, 120, 2.04, {"NY2", "AMS1", "CA1"}},
        {"P5000x2", "Quadro P5000", 2, 16, 16, 60, 1.56, {"NY2", "AMS1", "CA1"}},
        {"P5000x4", "Quadro P5000", 4, 16, 32, 120, 3.12, {"NY2", "AMS1", "CA1"}},
        {"P6000x2", "Quadro P6000", 2, 24, 16, 60, 2.20, {"NY2", "AMS1", "CA1"}},
        {"P6000x4", "Quadro P6000", 4, 24, 32, 120, 4.40, {"NY2", "AMS1", "CA1"}},
        {"RTX4000x2", "Quadro RTX4000", 2, 8, 16, 60, 1.12, {"NY2", "AMS1", "CA1"}},
        {"RTX4000x4", "Quadro RTX4000", 4, 8, 32, 120, 2.24, {"NY2", "AMS1", "CA1"}},
        {"RTX5000x2", "Quadro RTX5000", 2, 16, 16, 60, 1.64, {"NY2"}},
        {"RTX5000x4", "Quadro RTX5000", 4, 16, 32, 120, 3.28, {"NY2"}},
        {"V100-32Gx2", "Tesla V100 32G", 2, 32, 16, 60, 4.60, {"NY2"}},
        {"V100-32Gx4", "Tesla V100 32G", 4, 32, 32, 120, 9.20, {"NY2"}},
        {"A4000x2", "Ampere A4000", 2, 16, 16, 90, 1.52, {"NY2", "AMS1", "CA1"}},
        {"A4000x4", "Ampere A4000", 4, 16, 32, 180, 3.04, {"NY2", "AMS1", "CA1"}},
        {"A5000x2", "Ampere A5000", 2, 24, 16, 90, 2.76, {"NY2", "CA1"}},
        {"A5000x4", "Ampere A5000", 4, 24, 32, 180, 5.52, {"NY2", "CA1"}},
        {"A6000x2", "Ampere A6000", 2, 48, 16, 90, 3.78, {"NY2", "CA1"}},
        {"A6000x4", "Ampere A6000", 4, 48, 32, 180, 7.56, {"NY2", "CA1"}},
        {"A100x8", "Ampere A100", 8, 40, 96, 720, 24.72, {"NY2"}},
        {"A100-80Gx8", "Ampere A100 80G", 8, 80, 96, 720, 25.44, {"NY2"}},
        {"H100x8", "Hopper H100", 8, 80, 128, 2048, 47.60, {"NY2"}},
        {"C2", "none", 0, 0, 1, 1, 0.009, {"NY2", "AMS1", "CA1"}},
        {"A100x2", "Ampere A100", 2, 40, 24, 180, 6.18, {"NY2"}},
        {"A100x4", "Ampere A100", 4, 40, 48, 360, 12.36, {"NY2"}},
        {"A100-80Gx2", "Ampere A100 80G", 2, 80, 24, 180, 6.36, {"NY2"}},
        {"A100-80Gx4", "Ampere A100 80G", 4, 80, 48, 360, 12.72, {"NY2"}},
    };
    return t;
}

const std::vector<DiskTier> &disk_tiers() {
    static const std::vector<DiskTier> t = {{50, 0.0074, 5.00},    {100, 0.0104, 7.00},
                                            {250, 0.0149, 10.00},  {500, 0.0372, 25.00},
                                            {1000, 0.0818, 55.00}, {2000, 0.1786, 120.00}};
    return t;
}

} // namespace berth::paperspace
