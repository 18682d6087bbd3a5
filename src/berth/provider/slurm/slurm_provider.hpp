// The `slurm` provider: a session on a Slurm cluster, reached through its login node with the
// user's own ssh (`--host login`, an alias of ~/.ssh/config or [user@]host[:port]). berth
// builds no scheduler: a machine is a batch job named berth-NAME.
//
// `up` puts berth's static agent in ~/.berth/bin on the cluster (the shared home; replaced
// only when different), writes ~/.berth/machines/NAME (berth's public key, the batch script)
// and submits the job with the user's partition, GRES, time, CPUs, memory, nodes and account.
// On each node the job runs `berth agent slurm-node` (agent/slurm_node.hpp): a user-level sshd
// with a host key made for this job on a free port, whose address and key it writes back. The
// client reaches node 0 with ProxyJump through the login node, pins that key for this job, and
// the engine bootstraps Jupyter there as on every provider. While the job waits, its state,
// Slurm's reason and the expected start are the progress. The job's time limit is the hard
// deadline (--max-hours becomes --time); a job cannot be stopped and resumed (capability
// can_stop: no), `destroy` is scancel. Machine id: JOBID@LOGIN. Nothing is billed: `account`
// shows berth's jobs in GPU-hours (and CPU-hours) from sacct, its completion log when the
// cluster keeps no accounting database, in dollars only with a configured gpu-hour-rate.
#pragma once

#include "provider/registry.hpp"
#include "provider/ssh/host_provider.hpp"

namespace berth {

namespace slurm {

// `scontrol show job -o` and `scontrol show node -o`: KEY=VALUE words.
std::map<std::string, std::string> parse_record(const std::string &line);

// A berth machine's job as Slurm says: the state for the engine and the words for the user.
MachineInfo job_state(const std::map<std::string, std::string> &job);

// `sinfo -h -o '%P|%a|%l|%D|%T|%G|%c|%m'` lines: one offer per partition.
std::vector<Offer> parse_sinfo(const std::string &out, const std::string &login);

// The sbatch options berth passes, each checked (they reach a command line on the cluster).
Result<std::vector<std::string>> sbatch_args(const Options &opt, double max_hours);

// GPUs in a job's AllocTRES ("cpu=4,gres/gpu=2,node=1"; typed "gres/gpu:a100=2" when
// untyped is absent).
int gpus_of_tres(const std::string &tres);
// GPUs per node a --gres asks for ("gpu:2", "gpu:a100:2", "gpu" = 1; 0 without gpu).
int gpus_of_gres(const std::string &gres);
// `sacct -X -P -n -o JobID,JobName,State,Start,End,NNodes,AllocCPUS,AllocTRES` with
// SLURM_TIME_FORMAT=%s: berth's jobs (named berth-NAME) only; other lines are skipped.
std::vector<Provider::UsageLine> parse_sacct(const std::string &out);

} // namespace slurm

class SlurmProvider : public Provider {
public:
    explicit SlurmProvider(Options opt);
    std::string name() const override { return "slurm"; }
    Capabilities capabilities() const override;
    Result<std::vector<Offer>> offers(const nlohmann::json &search) override;
    Result<UpPlan> plan(InstanceSpec spec, const Options &opt) override;
    Result<MachineInfo> create(const InstanceSpec &spec) override;
    Result<MachineInfo> describe(const std::string &id) override;
    Result<> stop(const std::string &id) override;
    Result<> start(const std::string &id) override;
    Result<> destroy(const std::string &id) override;
    Result<std::string> purge_store(const std::string &id, bool check_only) override;
    Result<> attach_key(const std::string &id, const std::string &public_key) override;
    Result<std::vector<MachineInfo>> list() override;
    Result<SshEndpoint> node(const std::string &id, int k) override;
    Result<std::optional<Usage>> usage(int days) override;

private:
    Result<sshhost::Dest> login() const;
    Options m_opt;
};

Capabilities slurm_capabilities();
ProviderRow slurm_provider_row();

} // namespace berth
