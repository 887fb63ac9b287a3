// In-process daemon helpers shared by the relay integration tests.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "iroh/config.hpp"
#include "iroh/relay_proto.hpp"
#include "iroh/server/daemon.hpp"

namespace iroh::test {

// ServerConfirmsAuth, as the relay encodes it.
inline const relay::Bytes kConfirm{2};

// Plain HTTP on an ephemeral loopback port, no metrics listener, state in the temp dir.
inline config::Config test_config() {
  config::Config c;
  c.source = "test";
  c.dev = true;
  c.http_bind_addr = config::SocketAddr{"127.0.0.1", 0};
  c.enable_metrics = false;
  c.data_dir = std::filesystem::temp_directory_path();
  return c;
}

inline std::unique_ptr<server::Daemon> start_daemon(config::Config c) {
  auto d = std::make_unique<server::Daemon>(std::move(c), 2);
  d->start();
  return d;
}

// Polls `pred` every 5 ms for at most `timeout`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace iroh::test
