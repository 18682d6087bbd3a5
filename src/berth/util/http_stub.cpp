// The static agent build talks to no provider API: it runs on the rented machine.
#include "util/http.hpp"

namespace berth::http {

Result<Response> send(const Request &r) {
    return fail("this berth (the static agent build) has no HTTP client, so it cannot reach " +
                    r.url,
                "run the full berth on your own machine", 2);
}

} // namespace berth::http
