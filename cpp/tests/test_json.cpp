#include <cmath>

#include "check.h"
#include "trtverify/error.h"
#include "trtverify/json.h"

using namespace trtverify;

TEST(json_dumps_like_python_indent_2) {
    Json stats = Json::object();
    stats.set("mean", 1.5).set("p50", 0.1);
    Json j = Json::object();
    j.set("tool", "trt_infer").set("batch", 32).set("cuda_graph", false).set("gpu_compute_ms", stats);
    j.set("empty", Json::object()).set("list", Json::array().push(1).push(Json())).set("batch", 64);
    CHECK_EQ(j.dump(),
             "{\n  \"tool\": \"trt_infer\",\n  \"batch\": 64,\n  \"cuda_graph\": false,\n  \"gpu_compute_ms\": {\n"
             "    \"mean\": 1.5,\n    \"p50\": 0.1\n  },\n  \"empty\": {},\n  \"list\": [\n    1,\n    null\n  ]\n}");
}

TEST(json_numbers_and_strings) {
    CHECK_EQ(json_number(3.0), "3.0");
    CHECK_EQ(json_number(0.1), "0.1");
    CHECK_EQ(json_number(1e-07), "1e-07");
    CHECK_EQ(json_number(1.0 / 3.0), "0.3333333333333333");
    CHECK_EQ(json_number(123456789012.0), "123456789012.0");
    CHECK_THROWS(json_number(NAN), "not JSON");
    CHECK_THROWS(json_number(INFINITY), "not JSON");
    CHECK_EQ(json_quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
    CHECK_EQ(Json(std::string("H100 \xc3\xa9")).dump(), "\"H100 \xc3\xa9\"");
    CHECK_EQ(Json(18446744073709551615ull).dump(), "18446744073709551615");
}
