// The provider registry: one row per provider, and the only place berth lists them.
//
// A row says what a provider is called, the options it takes (on `berth up`, `offers` and
// `account`, and in its `[provider.NAME]` config section), how to build it, and how one of
// its machines stops itself from the inside. The engine and the CLI are handed a registry;
// tests hand them one with a fake provider in it.
#pragma once

#include "provider/provider.hpp"
#include "util/http.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace berth {

using HttpSender = std::function<Result<http::Response>(const http::Request &)>;

// What a provider is built with: its options (flags over its config section) and the HTTP
// senders the layer above chose (one that retries what is safe, one that never repeats).
struct ProviderContext {
    Options options;
    HttpSender send, send_once;
};

struct ProviderRow {
    std::string name;
    std::string summary;       // "Vast.ai's GPU marketplace (API key: VAST_API_KEY)"
    Capabilities capabilities; // the same as its providers' capabilities()
    std::vector<OptionSpec> options;
    std::function<Result<std::unique_ptr<Provider>>(const ProviderContext &)> make;
    // On the machine, when its watcher decides: asks the provider to stop this machine, with
    // the machine's own credential (capability self_stop "api"), leaving `reason` where
    // `berth ls` finds it (Vast: the label, "berth:NAME | reason"). Null: the agent ends it.
    std::function<Result<>(const std::string &api_url, const std::string &label,
                           const std::string &reason)>
        self_stop;
};

class ProviderRegistry {
public:
    ProviderRegistry(std::vector<ProviderRow> rows, HttpSender send, HttpSender send_once);

    const std::vector<ProviderRow> &rows() const { return m_rows; }
    // The row, or an error naming the providers there are (exit code 2).
    Result<const ProviderRow *> find(const std::string &name) const;
    // Builds the provider with these options; unknown options are an error naming them.
    Result<std::unique_ptr<Provider>> make(const std::string &name, const Options &opt = {}) const;
    std::vector<std::string> names() const;

private:
    std::vector<ProviderRow> m_rows;
    HttpSender m_send, m_send_once;
};

// The providers berth ships (the rows), and the registry over them with the default senders
// (retries by error kind under one deadline).
std::vector<ProviderRow> builtin_provider_rows();
const ProviderRegistry &builtin_registry();

// "berth:NAME", the label berth gives its machines, and back ("" when not berth's). A label
// may carry a note after " | " (why the machine stopped itself): name_from_label ignores it,
// label_note returns it.
std::string berth_label(const std::string &name);
std::string name_from_label(const std::string &label);
std::string label_note(const std::string &label);

} // namespace berth
