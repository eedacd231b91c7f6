// A tiny JSON value that keeps its keys in insertion order, for the machine-readable files the programs write.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace trtverify {

class Json {
public:
    Json() = default;  // null
    Json(bool b);
    Json(int v);
    Json(long v);
    Json(long long v);
    Json(unsigned v);
    Json(unsigned long v);
    Json(unsigned long long v);
    Json(double v);
    Json(const char* s);
    Json(std::string s);

    static Json object();
    static Json array();

    Json& set(const std::string& key, Json value);  // objects: adds or replaces, keeping the first position
    Json& push(Json value);                        // arrays

    // Indented by 2 like Python's json.dumps(indent=2); throws Error for NaN or Inf (not JSON).
    std::string dump(int indent = 2) const;

private:
    enum class Kind { Null, Bool, Int, UInt, Double, String, Object, Array };
    void write(std::string& out, int indent, int depth) const;

    Kind kind_ = Kind::Null;
    bool bool_ = false;
    long long int_ = 0;
    unsigned long long uint_ = 0;
    double double_ = 0;
    std::string string_;
    std::vector<std::pair<std::string, Json>> members_;
    std::vector<Json> items_;
};

std::string json_quote(const std::string& s);
// The shortest decimal that reads back as the same double (like Python's repr for floats).
std::string json_number(double v);

void write_json(const std::string& path, const Json& value);  // atomic, with a trailing newline

}  // namespace trtverify
