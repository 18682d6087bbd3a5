// The engine's lifecycle against a fake provider: up/stop/start/destroy/reconcile under a
// fault at each call, an interrupt between each intent and its confirmation, and records a
// killed berth left behind. Afterwards nothing bills, no record is stuck, names are reusable.
#include "engine/lifecycle.hpp"
#include "fake_provider.hpp"
#include "util/interrupt.hpp"

#include <cstdlib>
#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

using namespace berth;
using namespace berth::test;
namespace stdfs = std::filesystem;

namespace {

struct Lifecycle : ::testing::Test {
    stdfs::path dir;
    std::shared_ptr<FakeWorld> world = std::make_shared<FakeWorld>();
    std::optional<ProviderRegistry> reg;
    std::optional<StateDb> db;
    int connects = 0;

    void SetUp() override {
        char tmpl[] = "/tmp/berth-life-XXXXXX";
        dir = ::mkdtemp(tmpl);
        ::setenv("XDG_DATA_HOME", dir.c_str(), 1);
        ::setenv("XDG_CONFIG_HOME", dir.c_str(), 1);
        reg.emplace(fake_registry(world));
        db.emplace(std::move(*StateDb::open(dir / "state.db")));
        interrupt::reset();
    }
    void TearDown() override {
        interrupt::reset();
        ::unsetenv("XDG_DATA_HOME");
        ::unsetenv("XDG_CONFIG_HOME");
        stdfs::remove_all(dir);
    }
    Engine engine() {
        Engine e(*db, *reg, [](const std::string &) {});
        // Reaching the machine is OpenSSH's part, tested end to end; here it just succeeds.
        e.set_connect([this](InstanceRecord r, Provider &) -> Result<InstanceRecord> {
            ++connects;
            return r;
        });
        return e;
    }
    Result<InstanceRecord> up(const std::string &name = "gpu") {
        auto e = engine();
        return e.up({name, "fake", 0, std::chrono::seconds(5), {}});
    }
    int billing() const { return static_cast<int>(world->machines.size()); }
    Status status_of(const std::string &name) {
        auto r = db->get(name);
        return r && *r ? (*r)->status : Status::destroyed;
    }
    bool stuck(const std::string &name) {
        auto is = db->intents(name);
        for (const auto &i : *is)
            if (i.state == "pending") return true;
        return false;
    }
};

} // namespace

TEST_F(Lifecycle, UpIsReadyAndItsIntentDone) {
    auto r = up();
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->status, Status::running);
    EXPECT_EQ(billing(), 1);
    EXPECT_FALSE(stuck("gpu"));
    EXPECT_EQ(connects, 1);
}

TEST_F(Lifecycle, ARefusedCreateLeavesNothingAndTheNameFree) {
    world->faults["create"] = {Fault::error, ErrorKind::refused};
    auto r = up();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::refused);
    EXPECT_EQ(billing(), 0);
    EXPECT_FALSE(stuck("gpu"));
    world->faults.clear();
    EXPECT_TRUE(up()) << "the name is reusable";
}

// A marketplace offer rented by someone else between the search and the rental (conflict,
// nothing made): the engine plans again and rents the next best.
TEST_F(Lifecycle, AnOfferTakenMeanwhileIsReplannedOnce) {
    world->plan_offers = {"11", "12"};
    world->faults["create"] = {Fault::error, ErrorKind::conflict, 0, 1};
    auto r = up();
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(world->calls["create"], 2);
    EXPECT_EQ(world->plans, 2);
    EXPECT_NE(r->spec_json.find("\"offer_id\":\"12\""), std::string::npos) << r->spec_json;
    EXPECT_EQ(billing(), 1);
    EXPECT_FALSE(stuck("gpu"));
}

// The same offer again (the user named it): no second try; the conflict is the answer.
TEST_F(Lifecycle, ATakenOfferTheUserNamedFailsCleanly) {
    world->plan_offers = {"11", "11"};
    world->faults["create"] = {Fault::error, ErrorKind::conflict, 0, 1};
    auto r = up();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::conflict);
    EXPECT_EQ(world->calls["create"], 1);
    EXPECT_EQ(billing(), 0);
    EXPECT_FALSE(stuck("gpu"));
    EXPECT_EQ(status_of("gpu"), Status::destroyed);
}

// At most three more tries: a market where every offer goes is not chased for ever.
TEST_F(Lifecycle, TakenOffersAreChasedAFewTimesOnly) {
    world->plan_offers = {"1", "2", "3", "4", "5", "6"};
    world->faults["create"] = {Fault::error, ErrorKind::conflict};
    auto r = up();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::conflict);
    EXPECT_EQ(world->calls["create"], 4);
    EXPECT_EQ(billing(), 0);
}

TEST_F(Lifecycle, ACreateWhoseAnswerWasLostIsFoundByLabelAndDestroyed) {
    world->faults["create"] = {Fault::lost};
    auto r = up();
    ASSERT_FALSE(r);
    EXPECT_EQ(billing(), 0) << "the machine made behind the lost answer still bills";
    EXPECT_EQ(status_of("gpu"), Status::destroyed);
    EXPECT_FALSE(stuck("gpu"));
}

TEST_F(Lifecycle, TransientDescribeErrorsAreWaitedOut) {
    world->faults["describe"] = {Fault::error, ErrorKind::network, 0, 3};
    auto r = up();
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(world->calls["describe"], 4);
}

TEST_F(Lifecycle, AMalformedDescribeUndoesTheRental) {
    world->faults["describe"] = {Fault::error, ErrorKind::malformed, 0, 1};
    auto r = up();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::malformed);
    EXPECT_EQ(billing(), 0);
    EXPECT_NE(r.error().what.find("destroyed: it bills nothing"), std::string::npos);
}

TEST_F(Lifecycle, AHangingDescribeEndsAtTheTimeoutAndUndoes) {
    world->faults["describe"] = {Fault::hang, ErrorKind::timeout, 20};
    auto e = engine();
    auto r = e.up({"gpu", "fake", 0, std::chrono::seconds(1), {}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::timeout);
    EXPECT_EQ(billing(), 0);
}

// An interrupt at every call the engine makes during up: each time, nothing bills afterwards,
// nothing is stuck, the error is kind interrupted (exit 130), and the name is reusable.
TEST_F(Lifecycle, AnInterruptAtEveryStepOfUpLeavesNothingBilling) {
    for (const std::string at : {"create", "describe", "connect"}) {
        for (int nth = 1; nth <= 2; ++nth) {
            world->machines.clear();
            world->calls.clear();
            interrupt::reset();
            int seen = 0;
            world->on_call = [&](const std::string &call) {
                if (call == at && ++seen == nth) ::raise(SIGINT);
            };
            interrupt::install();
            auto e = engine();
            if (at == "connect")
                e.set_connect([&](InstanceRecord r, Provider &) -> Result<InstanceRecord> {
                    if (++seen == nth) ::raise(SIGINT);
                    return r;
                });
            auto r = e.up({"gpu", "fake", 0, std::chrono::seconds(5), {}});
            world->on_call = nullptr;
            std::string where = at + " #" + std::to_string(nth);
            if (r) { // the interrupt came after the last check: up finished, nothing to undo
                EXPECT_EQ(r->status, Status::running) << where;
                interrupt::reset();
                ASSERT_TRUE(e.destroy("gpu")) << where;
                continue;
            }
            EXPECT_EQ(r.error().kind, ErrorKind::interrupted) << where << ": " << r.error().what;
            EXPECT_EQ(r.error().code, 130) << where;
            EXPECT_EQ(billing(), 0) << where;
            EXPECT_FALSE(stuck("gpu")) << where;
            EXPECT_EQ(status_of("gpu"), Status::destroyed) << where;
        }
    }
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
}

// kill -9 after the intent, before the provider answered: the record is `creating` with no
// id, the lock is free (the holder died). The next command that touches it undoes it.
TEST_F(Lifecycle, AKilledUpIsUndoneByTheNextCommand) {
    InstanceRecord r;
    r.name = "gpu";
    r.provider = "fake";
    r.status = Status::creating;
    ASSERT_TRUE(db->put(r));
    ASSERT_TRUE(db->intend("gpu", "create", "fake"));
    MachineInfo m; // the provider made it; berth never heard
    m.id = "77";
    m.state = MachineState::running;
    m.label = "berth:gpu";
    world->machines["77"] = m;
    auto e = engine();
    auto now = e.refresh(*db->get("gpu").value());
    EXPECT_EQ(now.status, Status::destroyed);
    EXPECT_EQ(billing(), 0);
    EXPECT_FALSE(stuck("gpu"));
    EXPECT_TRUE(up()) << "the name is reusable";
}

TEST_F(Lifecycle, AKilledUpWithAnIdIsUndoneToo) {
    ASSERT_TRUE(up());
    ASSERT_TRUE(db->set_status("gpu", Status::loading));
    ASSERT_TRUE(db->intend("gpu", "create", "fake")); // as if killed while waiting
    auto e = engine();
    ASSERT_TRUE(e.resolve(*db->get("gpu").value()));
    EXPECT_EQ(billing(), 0);
    EXPECT_EQ(status_of("gpu"), Status::destroyed);
}

TEST_F(Lifecycle, ARecordSomeoneIsWorkingOnIsLeftAlone) {
    InstanceRecord r;
    r.name = "gpu";
    r.provider = "fake";
    r.status = Status::creating;
    ASSERT_TRUE(db->put(r));
    ASSERT_TRUE(db->intend("gpu", "create", "fake"));
    auto held = lock_instance("gpu"); // another berth's up, alive
    ASSERT_TRUE(held);
    // flock is per open file: a second open in this process conflicts like another process.
    auto e = engine();
    auto now = e.resolve(*db->get("gpu").value());
    ASSERT_TRUE(now);
    EXPECT_EQ(now->status, Status::creating);
    auto again = e.up({"gpu", "fake", 0, std::chrono::seconds(5), {}});
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().kind, ErrorKind::conflict);
    EXPECT_EQ(again.error().code, 4);
}

TEST_F(Lifecycle, AKilledDestroyIsFinished) {
    ASSERT_TRUE(up());
    ASSERT_TRUE(db->set_status("gpu", Status::destroying));
    ASSERT_TRUE(db->intend("gpu", "destroy"));
    auto e = engine();
    auto now = e.refresh(*db->get("gpu").value());
    EXPECT_EQ(now.status, Status::destroyed);
    EXPECT_EQ(billing(), 0);
}

TEST_F(Lifecycle, DestroyWithALostAnswerIsConfirmedByDescribe) {
    ASSERT_TRUE(up());
    world->faults["destroy"] = {Fault::lost_once};
    auto e = engine();
    auto d = e.destroy("gpu");
    EXPECT_FALSE(d); // the answer was lost: not confirmed yet
    EXPECT_EQ(billing(), 0);
    ASSERT_TRUE(e.destroy("gpu")) << "a second destroy confirms it gone";
    EXPECT_EQ(status_of("gpu"), Status::destroyed);
    EXPECT_FALSE(stuck("gpu"));
}

TEST_F(Lifecycle, DestroyThatFailsKeepsTheRecordDestroyable) {
    ASSERT_TRUE(up());
    world->faults["destroy"] = {Fault::error, ErrorKind::network, 0, 1};
    auto e = engine();
    EXPECT_FALSE(e.destroy("gpu"));
    EXPECT_EQ(billing(), 1);
    EXPECT_TRUE(e.destroy("gpu"));
    EXPECT_EQ(billing(), 0);
}

TEST_F(Lifecycle, ARefusedStopOrStartKeepsTheTruthAndSaysWhy) {
    ASSERT_TRUE(up());
    world->faults["stop"] = {Fault::error, ErrorKind::refused, 0, 1};
    auto e = engine();
    EXPECT_FALSE(e.stop("gpu"));
    auto r = db->get("gpu").value();
    EXPECT_EQ(r->status, Status::running);
    EXPECT_NE(r->message.find("stop refused"), std::string::npos);
    ASSERT_TRUE(e.stop("gpu"));
    world->faults["start"] = {Fault::error, ErrorKind::refused, 0, 1};
    EXPECT_FALSE(e.start("gpu", std::chrono::seconds(5)));
    r = db->get("gpu").value();
    EXPECT_EQ(r->status, Status::stopped);
    EXPECT_NE(r->message.find("start refused"), std::string::npos);
    auto listed = e.refresh(*r);
    EXPECT_EQ(listed.status, Status::stopped);
    ASSERT_TRUE(e.start("gpu", std::chrono::seconds(5)));
    EXPECT_EQ(status_of("gpu"), Status::running);
}

TEST_F(Lifecycle, ReconcileRebuildsRecordsFromLabels) {
    MachineInfo m;
    m.id = "55";
    m.state = MachineState::stopped;
    m.label = "berth:lost";
    world->machines["55"] = m;
    MachineInfo other = m;
    other.id = "56";
    other.label = "someone else's";
    world->machines["56"] = other;
    auto e = engine();
    auto added = e.reconcile("fake");
    ASSERT_TRUE(added) << added.error().what;
    ASSERT_EQ(added->size(), 1u);
    EXPECT_EQ((*added)[0], "lost");
    EXPECT_EQ(status_of("lost"), Status::stopped);
    world->faults["list"] = {Fault::error, ErrorKind::malformed};
    EXPECT_FALSE(e.reconcile("fake")) << "a list that is not a list is an error, not 'none'";
}

TEST_F(Lifecycle, UnknownProvidersAndOptionsAreUsageErrors) {
    auto e = engine();
    auto r = e.up({"gpu", "fak", 0, std::chrono::seconds(5), {}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, 2);
    EXPECT_NE(r.error().fix.find("did you mean 'fake'"), std::string::npos);
    auto o = e.up({"gpu", "fake", 0, std::chrono::seconds(5), {{"offer", "1"}}});
    ASSERT_FALSE(o);
    EXPECT_EQ(o.error().kind, ErrorKind::user);
}

TEST_F(Lifecycle, AKilledStopOrStartTakesTheProvidersWord) {
    ASSERT_TRUE(up());
    ASSERT_TRUE(db->set_status("gpu", Status::stopping));
    ASSERT_TRUE(db->intend("gpu", "stop"));
    world->machines.begin()->second.state = MachineState::stopped; // the request got through
    auto e = engine();
    auto now = e.refresh(*db->get("gpu").value());
    EXPECT_EQ(now.status, Status::stopped);
    EXPECT_NE(now.message.find("interrupted"), std::string::npos);
    EXPECT_FALSE(stuck("gpu"));
    EXPECT_EQ(billing(), 1) << "a stop is not undone by destroying";
    ASSERT_TRUE(db->set_status("gpu", Status::starting));
    ASSERT_TRUE(db->intend("gpu", "start"));
    now = e.refresh(*db->get("gpu").value());
    EXPECT_EQ(now.status, Status::stopped) << "the provider never got the start";
    EXPECT_FALSE(stuck("gpu"));
}

TEST_F(Lifecycle, ALostListDuringAnUndoLeavesTheIntentForTheNextCommand) {
    world->faults["create"] = {Fault::lost};
    world->faults["list"] = {Fault::error, ErrorKind::network, 0, 1};
    auto r = up();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("failed too"), std::string::npos) << r.error().what;
    EXPECT_EQ(billing(), 1) << "the fake made the machine behind the lost answer";
    // The next command that touches it finishes the undo.
    auto e = engine();
    auto now = e.refresh(*db->get("gpu").value());
    EXPECT_EQ(now.status, Status::destroyed);
    EXPECT_EQ(billing(), 0);
    EXPECT_FALSE(stuck("gpu"));
}
