// The sink that writes a save into a repository: chunks into packs, entries into a tree.
#pragma once

#include "store/repository.hpp"
#include "store/save.hpp"
#include "util/term.hpp"

#include "store/compress.hpp"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace berth::store {

// New chunks from a local walk are compressed and written by a worker thread while the walker
// reads, hashes and chunks the next file: the two halves of a save overlap on two cores.
// While the worker runs it alone touches the repository. The queue has its own lock, held only
// to push and pop: the walker never waits for a pack write or a sync, only for queue space.
class RepoSink : public SaveSink {
public:
    RepoSink(RepoStore &repo, bool show_progress, std::string label)
        : m_repo(repo), m_show(show_progress), m_label(std::move(label)) {
        auto ids = repo.chunk_ids(); // a copy: the worker changes the repository's index
        m_sent.insert(ids.begin(), ids.end());
    }
    ~RepoSink() override { (void)finish(); }
    bool has(const ChunkId &id) override { return m_sent.count(id) != 0; }
    Result<> chunk(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                   std::string_view stored) override {
        m_sent.insert(id);
        m_stored += stored.size();
        std::lock_guard lk(m_repo_mu);
        return m_repo.add(id, raw_len, flags, stored);
    }
    Result<> new_chunk(const ChunkId &id, std::string_view raw) override {
        m_sent.insert(id);
        if (!m_worker.joinable()) m_worker = std::thread([this] { work(); });
        std::unique_lock lk(m_mu);
        m_space.wait(lk, [&] { return m_queued < (64u << 20) || m_error; });
        if (m_error) return tl::unexpected(*m_error);
        // Buffers are reused (a pool the worker refills): fresh memory for every chunk costs a
        // page fault per 4 KiB, more than the copy itself.
        std::string buf;
        if (!m_free.empty()) {
            buf = std::move(m_free.back());
            m_free.pop_back();
        }
        buf.assign(raw.data(), raw.size());
        m_queue.push_back({id, std::move(buf)});
        m_queued += raw.size();
        m_ready.notify_one();
        return {};
    }
    Result<> finish() override {
        {
            std::lock_guard lk(m_mu);
            m_closing = true;
        }
        m_ready.notify_all();
        if (m_worker.joinable()) m_worker.join();
        if (m_error) return tl::unexpected(*m_error);
        return {};
    }
    Result<> entry(const Entry &e) override {
        entries.push_back(e);
        return {};
    }
    bool wants_total() const override { return m_show; }
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
    RepoStore &m_repo;
    bool m_show;
    std::string m_label;
    std::unique_ptr<term::Progress> m_bar;
    std::unordered_set<ChunkId, ChunkIdHash> m_sent;

    void work() {
        for (;;) {
            std::pair<ChunkId, std::string> item;
            {
                std::unique_lock lk(m_mu);
                m_ready.wait(lk, [&] { return !m_queue.empty() || m_closing; });
                if (m_queue.empty()) return;
                item = std::move(m_queue.front());
                m_queue.pop_front();
                m_queued -= item.second.size();
            }
            m_space.notify_one();
            {
                std::lock_guard lk(m_mu);
                if (m_error) continue; // the save has failed: drain the queue, write nothing
            }
            Result<std::size_t> r;
            {
                std::lock_guard rk(m_repo_mu); // not the queue's lock: the walker goes on
                r = m_repo.add_plain(item.first, item.second); // compressed into the pack
            }
            if (r) m_stored += *r;
            std::lock_guard lk(m_mu);
            if (!r && !m_error) {
                m_error = r.error();
                m_space.notify_all();
            }
            if (m_free.size() < 64) m_free.push_back(std::move(item.second));
        }
    }
    std::mutex m_mu;      // the queue, m_closing, m_error
    std::mutex m_repo_mu; // the repository
    std::condition_variable m_ready, m_space;
    std::deque<std::pair<ChunkId, std::string>> m_queue;
    std::vector<std::string> m_free; // spent buffers, for the walker to reuse
    std::size_t m_queued = 0;
    bool m_closing = false;
    std::optional<Error> m_error;
    std::thread m_worker;
};

} // namespace berth::store
