// A byte-counting TCP forwarder: the replica's stand-in for Vast's SSH proxy (ssh_host:ssh_port)
// and for Docker's host-port mapping (ports["22/tcp"]). Every byte between a client and the
// machine's sshd passes through it and is counted, so the replica bills transfer per GB for
// real traffic (SSH, the Jupyter tunnel, saves and restores).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace replica {

class Forwarder {
public:
    // Listens on 127.0.0.1 on a free port; forwards nowhere until target() is set.
    Forwarder();
    ~Forwarder();
    Forwarder(const Forwarder &) = delete;
    Forwarder &operator=(const Forwarder &) = delete;

    int port() const { return m_port; }
    void target(int port) { m_target = port; } // 0: refuse connections (machine down)
    int target() const { return m_target; }
    std::uint64_t bytes_in() const { return m_in; }   // client -> machine (its download)
    std::uint64_t bytes_out() const { return m_out; } // machine -> client (its upload)

private:
    void accept_loop();
    void pump(int client);
    int m_listen = -1, m_port = 0;
    std::atomic<int> m_target{0};
    std::atomic<bool> m_quit{false};
    std::atomic<std::uint64_t> m_in{0}, m_out{0};
    std::atomic<int> m_live{0};
    std::thread m_thread;
};

} // namespace replica
