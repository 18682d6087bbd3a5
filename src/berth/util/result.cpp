#include "util/result.hpp"

namespace berth {

const char *error_kind_name(ErrorKind k) {
    switch (k) {
    case ErrorKind::other:
        return "other";
    case ErrorKind::network:
        return "network";
    case ErrorKind::timeout:
        return "timeout";
    case ErrorKind::refused:
        return "refused";
    case ErrorKind::not_found:
        return "not-found";
    case ErrorKind::conflict:
        return "conflict";
    case ErrorKind::malformed:
        return "malformed";
    case ErrorKind::user:
        return "user";
    case ErrorKind::interrupted:
        return "interrupted";
    }
    return "other";
}

} // namespace berth
