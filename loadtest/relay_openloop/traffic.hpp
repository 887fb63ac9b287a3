// The generator's traffic: receivers that count datagrams (the bystander's with their one-way
// delay, a slow reader's Pongs), flood and bystander senders, the GET /ping timer, and the sink
// that reads what nginx forwards in the baselines.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "relay_openloop/streams.hpp"

namespace relay_openloop {

std::int64_t now_ns();

// ---- receivers ---------------------------------------------------------------------------------

struct ReceiverStats {
  std::atomic<std::uint64_t> datagrams{0};
  std::atomic<std::uint64_t> bytes{0};  // datagram contents (relay), else stream bytes
  std::atomic<bool> disconnected{false};
  std::string end_reason;
};

// Bystander samples: one-way delay per sequence number.
struct BystanderLog {
  std::mutex mutex;
  std::vector<std::int64_t> delay_ns;
  // The relay's CPU time (all its threads, /proc/PID/stat) spent while each datagram was in
  // flight, when relay_pid is known: the delay with the time the host gave to other processes
  // taken out (the flood test's bound, run_check).
  pid_t relay_pid = -1;
  std::vector<double> relay_cpu_ms;
  std::vector<bool> seen;
  std::atomic<std::uint64_t> received{0};
};

// A receiver on a slow link (phase `slow`): it reads at most `bytes_per_s` and sends a relay Ping
// every kSlowPingInterval, timing the relay's Pong (relay.md §6.5). The relay puts Pongs ahead
// of queued datagrams, but not ahead of what it already handed to the kernel: the Pong's delay
// is what the kernel holds unsent for this client (limits.tcp_notsent_lowat) plus what the
// client has not read yet, at the client's reading speed.
struct SlowReader {
  double bytes_per_s = 0;
  std::int64_t measure_from_ns = 0;  // Pings sent earlier (the warm-up) are not timed
  std::vector<double> pong_ms;
  std::uint64_t pings_sent = 0;  // from measure_from_ns on
};
constexpr auto kSlowPingInterval = 50ms;

// Reads relay frames until `stop`; counts datagrams, answers relay Pings (relay.md §6.5), and for
// the bystander decodes (seq, send time) from each datagram. `slow`: reads at its pace and times
// its own Pings' Pongs.
void relay_receiver(Stream& stream, ReceiverStats& stats, const std::atomic<bool>& stop,
                    BystanderLog* bystander, SlowReader* slow);

// nginx side: counts the raw bytes nginx forwards (decrypted first when its upstream leg is TLS).
void sink_receiver(Stream& stream, ReceiverStats& stats);

// Reads a TLS 1.3 connection's socket (Stream::tls13_socket) until it ends, without decrypting,
// and adds the application bytes of each whole record to stats.bytes, as sink_receiver does for
// a plain stream: the record's length less the 16-byte AEAD tag and the content-type byte (RFC
// 8446 §5.2; all of kTls13Suites have 16-byte tags, and OpenSSL adds no padding). What the
// benchmark's flood receivers do (PhaseSpec::count_tls13_records). `stop` (relay receivers): an
// end before it is set counts as a disconnection.
void tls13_record_receiver(int fd, ReceiverStats& stats, const std::atomic<bool>* stop);

// ---- senders -----------------------------------------------------------------------------------

struct SenderStats {
  std::atomic<std::uint64_t> frames{0};
  std::atomic<bool> failed{false};
};

// Writes `block` (K pre-encoded messages) in a loop. rate_frames_per_s > 0 paces the writes on a
// fixed schedule (open loop: a slow write is not compensated by waiting for anything, and a
// schedule more than 100 ms behind is reset rather than burst out).
void flood_sender(Stream& stream, const relay::Bytes& block, std::size_t frames_per_block,
                  double rate_frames_per_s, const std::atomic<bool>& stop, SenderStats& stats);

// One timestamped datagram per millisecond: seq (8 bytes) || steady-clock ns (8) || the relay's
// CPU seconds so far (8, a double; relay_pid > 0) || padding.
void bystander_sender(Stream& stream, const relay::EndpointId& dst, std::size_t size,
                      std::size_t max_count, pid_t relay_pid, const std::atomic<bool>& stop,
                      std::atomic<std::uint64_t>& sent, std::atomic<bool>& failed);

// ---- GET /ping timing --------------------------------------------------------------------------

struct PingLog {
  std::vector<double> ms;
  std::uint64_t failed = 0;
};

void ping_timer(std::uint16_t port, ClientTls* tls, const std::atomic<bool>& stop, PingLog& log);

double percentile(std::vector<double> v, double q);

// A loopback listener for nginx's upstream connections: plain, or (cert and key given) TLS with
// the relay's certificate and suites in the relay's server-preferred order, for nginx's
// `proxy_ssl` leg.
class Sink {
 public:
  Sink() : Sink({}, {}) {}
  Sink(const std::filesystem::path& cert, const std::filesystem::path& key);
  ~Sink();
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  std::uint16_t port() const { return port_; }
  // The next connection from nginx, TLS handshake done; throws after 5 s without one. The
  // accepted socket inherits the 5 s timeouts, which bound the handshake too.
  std::unique_ptr<Stream> accept_one();

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  SSL_CTX* tls_ = nullptr;
};

}  // namespace relay_openloop
