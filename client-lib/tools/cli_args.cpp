// The command line of iroh-relay-client and the options built from it (cli_args.hpp).
#include "cli_args.hpp"

#include <boost/asio/co_spawn.hpp>
#include <exception>
#include <iostream>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace iroh_relay_client {

namespace {

const std::set<std::string> kFlags = {"force", "seal", "post", "insecure", "watch", "help"};

}  // namespace

Args parse_args(int argc, char** argv) {
  Args args;
  if (argc < 2) throw std::invalid_argument("missing command");
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2);
      if (auto eq = name.find('='); eq != std::string::npos) {
        args.options[name.substr(0, eq)].push_back(name.substr(eq + 1));
      } else if (kFlags.count(name)) {
        args.flags.insert(name);
      } else {
        if (i + 1 >= argc) throw std::invalid_argument("--" + name + " needs a value");
        args.options[name].push_back(argv[++i]);
      }
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

std::chrono::milliseconds timeout_of(const Args& args) {
  double secs = std::stod(args.get("timeout").value_or("10"));
  if (!(secs > 0)) throw std::invalid_argument("--timeout must be > 0");
  return std::chrono::milliseconds(static_cast<std::int64_t>(secs * 1000));
}

RelayClientOptions relay_options(const Args& args) {
  RelayClientOptions options;
  if (auto ca = args.get("ca-file")) options.ca_file = *ca;
  options.verify_tls = !args.has("insecure");
  options.auth_token = args.get("token");
  options.connect_timeout = timeout_of(args);
  options.ping_timeout = std::min(options.connect_timeout, std::chrono::milliseconds(5000));
  return options;
}

HttpOptions http_options(const Args& args) {
  HttpOptions options;
  if (auto ca = args.get("ca-file")) options.ca_file = *ca;
  options.verify_tls = !args.has("insecure");
  options.timeout = timeout_of(args);
  return options;
}

relay::EndpointId parse_id(const std::string& text) {
  if (auto id = relay::EndpointId::parse(text)) return *id;
  if (auto id = pkarr::key_from_z32(text)) return *id;
  throw std::invalid_argument("not an EndpointId (64 hex, base32 or z-base-32): " + text);
}

relay::SecretKey key_or_ephemeral(const Args& args) {
  if (auto path = args.get("key")) return load_secret_key(*path);
  auto key = relay::SecretKey::generate();
  std::cerr << "using a throwaway identity " << key.public_key().to_hex() << "\n";
  return key;
}

void run(std::function<asio::awaitable<void>(asio::io_context&)> body) {
  asio::io_context ctx;
  std::exception_ptr error;
  asio::co_spawn(ctx, body(ctx), [&](std::exception_ptr e) { error = e; });
  ctx.run();
  if (error) std::rethrow_exception(error);
}

}  // namespace iroh_relay_client
