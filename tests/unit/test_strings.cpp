#include "util/strings.hpp"
#include <gtest/gtest.h>
TEST(Strings, EditDistance) { EXPECT_EQ(berth::str::edit_distance("persist", "presist"), 1u); }
