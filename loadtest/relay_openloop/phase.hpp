// One measured phase: what it runs (PhaseSpec) and what it measured (PhaseResult), run_phase and
// its printout, the relay's peak search (find_peak), the slow-receiver phase, and the overload
// cycles interleaved with a paced window.
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "relay_openloop/streams.hpp"
#include "relay_openloop/traffic.hpp"

namespace relay_openloop {

// ---- one phase ---------------------------------------------------------------------------------

struct PhaseSpec {
  std::string label;
  std::size_t pairs = 4;
  std::size_t k = 16;
  std::size_t size = 1200;
  std::size_t batch = 0;  // datagrams per frame; 0 = single-datagram frames (type 4)
  double rate_per_s = 0;  // offered datagrams/s over all senders; 0 = unlimited
  double seconds = 5;
  std::chrono::milliseconds warmup{1000};
  bool bystander = true;
  bool pinger = true;
  // Also time each bystander datagram in the relay's CPU time (BystanderLog::relay_cpu_ms).
  bool relay_cpu_delay = false;
  // The CPUs the relay and this generator are pinned to, for the host steal figures (-1: none).
  int relay_cpu = -1, gen_cpu = -1;
  // Flood receivers on TLS 1.3 (the relay's receivers, nginx's TLS sink) count the application
  // bytes of the records they read instead of decrypting them (tls13_record_receiver), as the
  // plain sink behind nginx's TLS termination reads without decrypting: otherwise the generator
  // decrypts everything the relay and nginx-with-TLS-both-legs deliver, runs out of CPU before
  // they do, and the TLS ratios measure it (relay CPU 0.7 in such phases). The bystander still
  // decrypts: it reads timestamps. The benchmark's phases; not --check's.
  bool count_tls13_records = false;
};

struct PhaseResult {
  bool ran = false;
  std::string error;
  double delivered_per_s = 0;  // datagrams
  double mb_per_s = 0;         // datagram contents, 10^6 bytes
  double offered_per_s = 0;    // datagrams written by the senders
  double cpu_cores = 0;        // of the relay / nginx during the window
  std::size_t receivers = 0, disconnected = 0, senders_failed = 0;
  bool bystander_sender_failed = false;  // its connection broke during the flood
  std::string disconnect_reason;
  std::uint64_t by_sent = 0, by_received = 0;
  double by_p50_ms = NAN, by_p99_ms = NAN, by_max_ms = NAN;
  double by_cpu_p99_ms = NAN;  // relay CPU time while in flight (BystanderLog::relay_cpu_ms)
  PingLog ping;
  // Share of the window the hypervisor took from the relay's / the generator's CPU (percent).
  double steal_relay_pct = NAN, steal_gen_pct = NAN;
  std::string tls;           // negotiated by the first sender's connection (Stream::tls_info)
  std::string upstream_tls;  // by nginx's first upstream connection to the TLS sink
  bool tls13_records_counted = false;  // PhaseSpec::count_tls13_records applied
};

// `rx_target`: where the receivers (and the bystander's) connect, when not `target` (the mesh
// benchmark: senders on one node, receivers on its peer).
PhaseResult run_phase(const Target& target, const PhaseSpec& spec, Sink* sink,
                      const Target* rx_target = nullptr);

void print_result(const std::string& label, const PhaseResult& r, bool relay);

// The relay's capacity: an unlimited flood may collapse it, so its peak is searched with paced
// offered loads doubling from 8,000 datagrams/s (1 s each) until the relay delivers less than
// 90 % of what was offered or the generator cannot offer more; the best delivered rate wins.
double find_peak(const Target& target, PhaseSpec spec, const Target* rx_target = nullptr);

// Phase `slow`: one unpaced sender to one receiver that reads at `bytes_per_s` and times the
// relay's Pongs to its Pings (SlowReader), for `spec.seconds` after `spec.warmup`.
struct SlowResult {
  bool ran = false;
  std::string error;
  SlowReader reader;
  double delivered_per_s = 0;
  bool disconnected = false;
  std::string disconnect_reason;
};

SlowResult run_slow_phase(const Target& target, const PhaseSpec& spec, double bytes_per_s);

void print_slow_result(const SlowResult& r, double bytes_per_s);

// Overload against a peak measured at the same time (--overload-cycles=N). The ramp's best
// 1-s step is a maximum over many windows on a machine whose speed swings by a fifth between
// seconds, compared with one later window: that ratio is low even when nothing collapses. Here
// each cycle runs three windows of the overload phases' length back to back (the same bystander
// and pinger): paced at a rate R the relay sustains (it delivered >= 97 % of it), then 4x and
// 16x R unpaced; each cycle's ratio is its flood over its own paced window, and the figure is
// the median. R starts at the ramp's peak and follows a staircase: 10 % lower after a paced
// window the relay did not keep up with (that cycle does not count: its "paced" window was
// itself a flood), 3 % higher after one it did.
struct InterleavedOverload {
  std::vector<double> ratio4, ratio16;  // of the cycles whose paced window was sustained
  std::size_t cycles = 0;               // that ran
};

InterleavedOverload interleaved_overload(const Target& target, PhaseSpec spec, double peak,
                                         int cycles);

}  // namespace relay_openloop
