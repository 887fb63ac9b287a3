// What the commands of iroh-relay-client share (tools/, private to the tool): the parsed
// command line and the options and helpers every command builds from it. The commands are in
// iroh_relay_client.cpp, `probe` in probe.cpp.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "iroh/http_client.hpp"
#include "iroh/identity.hpp"
#include "iroh/lookup.hpp"
#include "iroh/relay_client.hpp"

namespace iroh_relay_client {

namespace asio = boost::asio;
namespace relay = iroh::relay;
namespace pkarr = iroh::pkarr;
using namespace iroh::client;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> options;
  std::set<std::string> flags;

  std::optional<std::string> get(const std::string& name) const {
    auto it = options.find(name);
    if (it == options.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
  std::string require(const std::string& name) const {
    auto v = get(name);
    if (!v) throw std::invalid_argument("missing --" + name);
    return *v;
  }
  bool has(const std::string& name) const { return flags.count(name) != 0; }
};

Args parse_args(int argc, char** argv);
// --timeout in seconds (default 10), per operation.
std::chrono::milliseconds timeout_of(const Args& args);
RelayClientOptions relay_options(const Args& args);
HttpOptions http_options(const Args& args);
relay::EndpointId parse_id(const std::string& text);
relay::SecretKey key_or_ephemeral(const Args& args);
// Runs `body` to completion on a fresh io_context; rethrows its exception.
void run(std::function<asio::awaitable<void>(asio::io_context&)> body);

// `probe URL ...` (probe.cpp): exit code 0 when every check passed.
int cmd_probe(const Args& args);

}  // namespace iroh_relay_client
