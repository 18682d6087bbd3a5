// berth's ledger: what every machine has cost, from the intervals the engine metered (rent
// while running, storage while it exists) and the one cost model (core/cost.hpp). It is
// berth's own account, kept independently of the provider's bill, so the two can be compared.
#pragma once

#include "state/state.hpp"

#include <string>
#include <vector>

namespace berth {

struct LedgerEntry {
    std::string instance, provider, provider_id;
    double rent = 0, storage = 0, transfer = 0;
    double burn_per_hour = 0; // what its open intervals cost per hour now
    double total() const { return rent + storage + transfer; }
};

struct Ledger {
    std::vector<LedgerEntry> entries; // one per machine, in the order they were first metered
    double total = 0, burn_per_hour = 0;
};

Ledger summarize(const std::vector<Meter> &meters, double now);

double epoch_now(); // epoch seconds, sub-second

} // namespace berth
