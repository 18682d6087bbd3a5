// The slurm provider's parsers: what scontrol and sinfo say, and the sbatch options berth
// builds from the user's flags (each reaches a command line on the cluster).
#include "provider/slurm/slurm_provider.hpp"

#include <gtest/gtest.h>

using namespace berth;

TEST(Slurm, ParsesScontrolRecords) {
    auto r = slurm::parse_record(
        "JobId=42 JobName=berth-c1 UserId=ana(1000) JobState=PENDING Reason=Resources "
        "StartTime=2026-12-02T10:00:00 TimeLimit=00:30:00 NodeList=(null)");
    EXPECT_EQ(r["JobId"], "42");
    EXPECT_EQ(r["JobName"], "berth-c1");
    EXPECT_EQ(r["Reason"], "Resources");
    EXPECT_EQ(r["NodeList"], "(null)");
}

TEST(Slurm, JobStatesForTheEngine) {
    auto p = slurm::job_state(
        {{"JobState", "PENDING"}, {"Reason", "Priority"}, {"StartTime", "2026-12-02T10:00:00"}});
    EXPECT_EQ(p.state, MachineState::provisioning);
    EXPECT_EQ(p.message, "pending: Priority (expected start 2026-12-02T10:00:00)");
    auto q =
        slurm::job_state({{"JobState", "PENDING"}, {"Reason", "None"}, {"StartTime", "Unknown"}});
    EXPECT_EQ(q.message, "pending: waiting for the scheduler");
    EXPECT_EQ(slurm::job_state({{"JobState", "RUNNING"}, {"NodeList", "node1"}}).state,
              MachineState::loading); // running once its sshd is known
    auto t = slurm::job_state({{"JobState", "TIMEOUT"}, {"TimeLimit", "00:01:00"}});
    EXPECT_EQ(t.state, MachineState::gone);
    EXPECT_NE(t.message.find("time limit (00:01:00)"), std::string::npos);
    EXPECT_NE(slurm::job_state({{"JobState", "CANCELLED"}}).message.find("cancelled"),
              std::string::npos);
    EXPECT_EQ(slurm::job_state({}).state, MachineState::gone); // no longer known
    // A crafted reason reaches no terminal as escape codes, and stays short.
    auto h =
        slurm::job_state({{"JobState", "PENDING"},
                          {"Reason", "Priority\x1b]0;pwned\x07\x1b[2J" + std::string(500, 'x')}});
    EXPECT_EQ(h.message.find('\x1b'), std::string::npos) << h.message;
    EXPECT_EQ(h.message.find('\x07'), std::string::npos);
    EXPECT_LT(h.message.size(), 200u);
    auto w = slurm::job_state({{"JobState", "WEIRD\nSTATE"}});
    EXPECT_EQ(w.state, MachineState::gone);
    EXPECT_EQ(w.message.find('\n'), std::string::npos);
}

TEST(Slurm, OffersFromSinfo) {
    auto o = slurm::parse_sinfo("gpu*|up|1-00:00:00|3|idle|gpu:a100:4(S:0-1)|64|512000\n"
                                "gpu*|up|1-00:00:00|2|mixed|gpu:a100:4(S:0-1)|64|512000\n"
                                "cpu|up|4:00:00|10|idle|(null)|32|128000\n"
                                "down|down|4:00:00|1|idle|(null)|1|1000\n"
                                "bad;name|up|1|1|idle|(null)|1|1\n"
                                "garbage\n",
                                "login");
    ASSERT_EQ(o.size(), 2u);
    EXPECT_EQ(o[0].id, "gpu");
    EXPECT_EQ(o[0].gpu_name, "a100");
    EXPECT_EQ(o[0].gpu_count, 4);
    EXPECT_EQ(o[0].raw["nodes"], 5);
    EXPECT_EQ(o[0].raw["idle_nodes"], 3);
    EXPECT_EQ(o[1].id, "cpu");
    EXPECT_EQ(o[1].gpu_count, 0);
    EXPECT_EQ(o[1].raw["cpu_cores"], 32);
}

TEST(Slurm, SbatchArgsAreChecked) {
    auto a = slurm::sbatch_args({{"partition", "gpu"},
                                 {"gres", "gpu:a100:2"},
                                 {"cpus", "8"},
                                 {"mem", "32G"},
                                 {"nodes", "2"},
                                 {"account", "lab-1"}},
                                4.5);
    ASSERT_TRUE(a);
    std::vector<std::string> want = {"--partition=gpu",     "--gres=gpu:a100:2", "--time=270",
                                     "--cpus-per-task=8",   "--mem=32G",         "--nodes=2",
                                     "--ntasks-per-node=1", "--account=lab-1"};
    EXPECT_EQ(*a, want);
    auto b = slurm::sbatch_args({{"time", "1-02:00:00"}}, 3);
    ASSERT_TRUE(b);
    EXPECT_EQ((*b)[0], "--time=1-02:00:00"); // --time wins over --max-hours
    for (auto bad : std::vector<Options>{{{"partition", "gpu;reboot"}},
                                         {{"gres", "gpu:$(id)"}},
                                         {{"time", "4h"}},
                                         {{"cpus", "0"}},
                                         {{"cpus", "-1"}},
                                         {{"mem", "lots"}},
                                         {{"mem", "G"}},
                                         {{"nodes", "0"}},
                                         {{"nodes", "1000"}},
                                         {{"account", "a b"}}}) {
        auto r = slurm::sbatch_args(bad, 0);
        EXPECT_FALSE(r) << bad.begin()->first << "=" << bad.begin()->second;
        if (!r) {
            EXPECT_EQ(r.error().code, 2);
        }
    }
}

TEST(Slurm, CapabilitiesRefuseStop) {
    auto c = slurm_capabilities();
    EXPECT_FALSE(c.can_stop);
    EXPECT_FALSE(c.billed);
    EXPECT_TRUE(c.lists_machines);
    SlurmProvider p({});
    auto s = p.stop("1@c1@login");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, 2);
}

TEST(Slurm, AccountingFromSacct) {
    EXPECT_EQ(slurm::gpus_of_tres("billing=4,cpu=4,gres/gpu=2,mem=8G,node=1"), 2);
    EXPECT_EQ(slurm::gpus_of_tres("cpu=4,gres/gpu:a100=1,gres/gpu:v100=2"), 3);
    EXPECT_EQ(slurm::gpus_of_tres("cpu=4,gres/gpu=2,gres/gpu:a100=2"), 2) << "untyped is the sum";
    EXPECT_EQ(slurm::gpus_of_tres("cpu=1,mem=500M,node=1"), 0);
    EXPECT_EQ(slurm::gpus_of_tres("gres/gpu=lots,gres/gpu=99999999"), 0);
    EXPECT_EQ(slurm::gpus_of_tres(""), 0);
    auto rows = slurm::parse_sacct(
        "12|berth-c1|COMPLETED|1796170000|1796173600|1|4|cpu=4,gres/gpu=2,node=1\n"
        "12.batch|batch|COMPLETED|1796170000|1796173600|1|4|cpu=4\n"
        "13|berth-c2|RUNNING|1796173000|Unknown|2|2|cpu=2,node=2\n"
        "14|train.sh|COMPLETED|1796170000|1796173600|1|4|cpu=4\n"
        "15|berth-Bad;rm|FAILED|1|2|1|1|\n"
        "16|berth-c3|CANCELLED by 1000|1796170000|1796170360|1|1|cpu=1\n"
        "garbage\n");
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0].name, "c1");
    EXPECT_EQ(rows[0].id, "12");
    EXPECT_EQ(rows[0].gpus, 2);
    EXPECT_EQ(rows[0].cpus, 4);
    EXPECT_DOUBLE_EQ(rows[0].hours(0) * rows[0].gpus, 2.0);
    EXPECT_EQ(rows[1].state, "RUNNING");
    EXPECT_EQ(rows[1].end, 0) << "still running: counted up to now";
    EXPECT_EQ(rows[1].nodes, 2);
    EXPECT_DOUBLE_EQ(rows[1].hours(1796173000 + 1800), 0.5);
    EXPECT_EQ(rows[2].state, "CANCELLED") << "the reason's words are not the state";
    EXPECT_DOUBLE_EQ(rows[2].hours(0), 0.1);
}

TEST(Slurm, GpusAGresAsksFor) {
    EXPECT_EQ(slurm::gpus_of_gres("gpu:2"), 2);
    EXPECT_EQ(slurm::gpus_of_gres("gpu:a100:4"), 4);
    EXPECT_EQ(slurm::gpus_of_gres("gpu"), 1);
    EXPECT_EQ(slurm::gpus_of_gres("gpu:a100"), 1);
    EXPECT_EQ(slurm::gpus_of_gres("shard:2,gpu:1"), 1);
    EXPECT_EQ(slurm::gpus_of_gres(""), 0);
    EXPECT_EQ(slurm::gpus_of_gres("mps:100"), 0);
}
