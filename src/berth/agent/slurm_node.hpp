// One node of a Slurm job that is a berth machine: `berth agent slurm-node --dir DIR`, run by
// the job's batch script (srun, once per node, where the job has several). The cluster gives
// no SSH into a job's node to berth, so the node runs its own: a user-level sshd with a host
// key made for this job, on a free port, that lets in the keys in DIR/authorized_keys.
//
// It writes DIR/node<K>.json (schema berth.slurm-node/1: node, job, host, port, host_key) once
// sshd answers, which the client reads through the login node to reach the node (ProxyJump)
// and pin its host key for this job; node 0 also writes DIR/dist.env, what a distributed
// launcher needs (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, NODE_RANK's source, the node list).
// It lives as long as sshd does; the job's end (time limit, scancel) ends both, and the
// reason is Slurm's to say.
#pragma once

#include <filesystem>

namespace berth {

int run_slurm_node(const std::filesystem::path &dir);

} // namespace berth
