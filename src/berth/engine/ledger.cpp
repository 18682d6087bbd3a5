#include "engine/ledger.hpp"

#include "core/cost.hpp"

#include <algorithm>
#include <chrono>

namespace berth {

double epoch_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Ledger summarize(const std::vector<Meter> &meters, double now) {
    Ledger l;
    for (const auto &m : meters) {
        auto it = std::find_if(l.entries.begin(), l.entries.end(), [&](const LedgerEntry &e) {
            return e.provider == m.provider && e.provider_id == m.provider_id;
        });
        if (it == l.entries.end()) {
            l.entries.push_back({m.instance, m.provider, m.provider_id});
            it = l.entries.end() - 1;
        }
        if (m.kind == "transfer") { // already dollars, from the provider's byte counts
            it->transfer += m.amount;
            continue;
        }
        double end = m.end > 0 ? m.end : now;
        double hours = std::max(0.0, end - m.start) / 3600.0;
        if (m.kind == "rent")
            it->rent += cost::estimate({m.rate_per_hour, 0, 0, 0}, {hours, 0, 0, 0, 0}).rent;
        else // storage intervals carry their $/h: the GB are already in the rate
            it->storage += cost::estimate({0, m.rate_per_hour * cost::k_hours_per_month, 0, 0},
                                          {0, hours, 1, 0, 0})
                               .storage;
        if (m.end == 0) it->burn_per_hour += m.rate_per_hour;
    }
    for (const auto &e : l.entries) {
        l.total += e.total();
        l.burn_per_hour += e.burn_per_hour;
    }
    return l;
}

} // namespace berth
