// The one cost model: every dollar figure berth prints comes from here.
// Rent per hour while running; storage per GB-hour while the storage exists (stopped or not);
// transfer per GB. Storage prices are quoted per GB-month; a month is 720 hours, as Vast.ai
// and Paperspace bill it.
#pragma once

namespace berth::cost {

inline constexpr double k_hours_per_month = 720.0;

struct Rates {
    double rent_per_hour = 0; // whole machine
    double storage_per_gb_month = 0;
    double download_per_gb = 0;
    double upload_per_gb = 0;
};

struct Usage {
    double running_hours = 0;
    double existing_hours = 0; // storage accrues for as long as it exists
    double storage_gb = 0;
    double download_gb = 0, upload_gb = 0;
};

struct Breakdown {
    double rent = 0, storage = 0, transfer = 0;
    double total() const { return rent + storage + transfer; }
};

inline Breakdown estimate(const Rates &r, const Usage &u) {
    Breakdown b;
    b.rent = r.rent_per_hour * u.running_hours;
    b.storage = r.storage_per_gb_month * u.storage_gb * u.existing_hours / k_hours_per_month;
    b.transfer = r.download_per_gb * u.download_gb + r.upload_per_gb * u.upload_gb;
    return b;
}

// Storage billed beyond an included quota, for one month.
inline double overage_per_month(double used_gb, double included_gb, double per_gb_month) {
    double over = used_gb > included_gb ? used_gb - included_gb : 0.0;
    return estimate({0, per_gb_month, 0, 0}, {0, k_hours_per_month, over, 0, 0}).storage;
}

} // namespace berth::cost
