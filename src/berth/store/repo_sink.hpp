// The sink that writes a save into a repository: chunks into packs, entries into a tree.
#pragma once

#include "store/repository.hpp"
#include "store/save.hpp"
#include "util/term.hpp"

#include <memory>

namespace berth::store {

class RepoSink : public SaveSink {
public:
    RepoSink(Repository &repo, bool show_progress, std::string label)
        : m_repo(repo), m_show(show_progress), m_label(std::move(label)) {}
    bool has(const ChunkId &id) override { return m_repo.has(id) || m_sent.count(id); }
    Result<> chunk(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags, std::string_view stored) override {
        m_sent.insert(id);
        return m_repo.add(id, raw_len, flags, stored);
    }
    Result<> entry(const Entry &e) override {
        entries.push_back(e);
        return {};
    }
    void total(std::uint64_t bytes, std::uint64_t) override {
        if (m_show) m_bar = std::make_unique<term::Progress>(m_label, bytes);
    }
    void progress(std::uint64_t n) override {
        // Local saves report increments; remote ones report a running total: both end up here.
        if (m_bar) m_bar->add(n);
    }
    void done() { m_bar.reset(); }
    std::vector<Entry> entries;

private:
    Repository &m_repo;
    bool m_show;
    std::string m_label;
    std::unique_ptr<term::Progress> m_bar;
    std::unordered_set<ChunkId, ChunkIdHash> m_sent;
};

} // namespace berth::store
