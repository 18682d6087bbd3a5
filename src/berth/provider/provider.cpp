#include "provider/provider.hpp"

namespace berth {

nlohmann::json Offer::fields() const {
    nlohmann::json f = raw.is_object() ? raw : nlohmann::json::object();
    f["id"] = raw.is_object() && raw.contains("id") ? raw["id"] : nlohmann::json(id);
    f["gpu_name"] = gpu_name;
    f["num_gpus"] = gpu_count;
    f["gpu_ram"] = vram_gb * 1000.0; // MB, as the query language's gpu_ram>=16 means 16000
    f["gpu_total_ram"] = vram_gb * 1000.0 * gpu_count;
    f["dph_base"] = price_per_hour;
    f["dph_total"] = total_per_hour;
    f["storage_cost"] = storage_per_gb_month;
    f["inet_down_cost"] = transfer_down_per_gb;
    f["inet_up_cost"] = transfer_up_per_gb;
    f["dlperf"] = dlperf;
    f["dlperf_per_dphtotal"] = dlperf_per_dollar;
    f["reliability"] = reliability;
    f["inet_down"] = inet_down_mbps;
    f["inet_up"] = inet_up_mbps;
    f["score"] = score;
    f["is_bid"] = interruptible;
    f["min_bid"] = min_bid;
    f["geolocation"] = location;
    // What the default filters ask of an offer a provider lists as rentable now.
    for (const char *k : {"verified", "rentable"})
        if (!f.contains(k)) f[k] = true;
    for (const char *k : {"rented", "external"})
        if (!f.contains(k)) f[k] = false;
    return f;
}

} // namespace berth
