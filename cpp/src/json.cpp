#include "trtverify/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "trtverify/error.h"
#include "trtverify/file.h"

namespace trtverify {

Json::Json(bool b) : kind_(Kind::Bool), bool_(b) {}
Json::Json(int v) : kind_(Kind::Int), int_(v) {}
Json::Json(long v) : kind_(Kind::Int), int_(v) {}
Json::Json(long long v) : kind_(Kind::Int), int_(v) {}
Json::Json(unsigned v) : kind_(Kind::UInt), uint_(v) {}
Json::Json(unsigned long v) : kind_(Kind::UInt), uint_(v) {}
Json::Json(unsigned long long v) : kind_(Kind::UInt), uint_(v) {}
Json::Json(double v) : kind_(Kind::Double), double_(v) {}
Json::Json(const char* s) : kind_(Kind::String), string_(s) {}
Json::Json(std::string s) : kind_(Kind::String), string_(std::move(s)) {}

Json Json::object() {
    Json j;
    j.kind_ = Kind::Object;
    return j;
}

Json Json::array() {
    Json j;
    j.kind_ = Kind::Array;
    return j;
}

Json& Json::set(const std::string& key, Json value) {
    if (kind_ != Kind::Object) throw Error("internal error: Json::set on a non-object");
    for (auto& [k, v] : members_)
        if (k == key) {
            v = std::move(value);
            return *this;
        }
    members_.emplace_back(key, std::move(value));
    return *this;
}

Json& Json::push(Json value) {
    if (kind_ != Kind::Array) throw Error("internal error: Json::push on a non-array");
    items_.push_back(std::move(value));
    return *this;
}

std::string json_quote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);  // UTF-8 passes through
                }
        }
    }
    return out + "\"";
}

std::string json_number(double v) {
    if (!std::isfinite(v)) throw Error("cannot write " + std::to_string(v) + " to JSON (NaN and Inf are not JSON)");
    char buf[32];
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    std::string s = buf;
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // stays a float, as Python writes 3.0
    return s;
}

void Json::write(std::string& out, int indent, int depth) const {
    const std::string pad = indent > 0 ? "\n" + std::string(static_cast<std::size_t>(indent * (depth + 1)), ' ') : "";
    const std::string close = indent > 0 ? "\n" + std::string(static_cast<std::size_t>(indent * depth), ' ') : "";
    switch (kind_) {
        case Kind::Null: out += "null"; break;
        case Kind::Bool: out += bool_ ? "true" : "false"; break;
        case Kind::Int: out += std::to_string(int_); break;
        case Kind::UInt: out += std::to_string(uint_); break;
        case Kind::Double: out += json_number(double_); break;
        case Kind::String: out += json_quote(string_); break;
        case Kind::Object:
            if (members_.empty()) {
                out += "{}";
                break;
            }
            out += "{";
            for (std::size_t i = 0; i < members_.size(); ++i) {
                out += (i ? "," : "") + pad + json_quote(members_[i].first) + (indent > 0 ? ": " : ":");
                members_[i].second.write(out, indent, depth + 1);
            }
            out += close + "}";
            break;
        case Kind::Array:
            if (items_.empty()) {
                out += "[]";
                break;
            }
            out += "[";
            for (std::size_t i = 0; i < items_.size(); ++i) {
                out += (i ? "," : "") + pad;
                items_[i].write(out, indent, depth + 1);
            }
            out += close + "]";
            break;
    }
}

std::string Json::dump(int indent) const {
    std::string out;
    write(out, indent, 0);
    return out;
}

void write_json(const std::string& path, const Json& value) {
    const std::string text = value.dump() + "\n";
    write_file_atomic(path, text.data(), text.size());
}

}  // namespace trtverify
