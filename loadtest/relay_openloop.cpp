// Open-loop load generator for the relay data plane (issue 13), and the CI flood check.
//
// Clients complete the real handshake (Beast upgrade + relay-proto ClientAuth through the
// integration tests' raw client), then senders write pre-encoded, masked WebSocket messages that
// each carry one relay frame (relay.md §3.4: one frame per message), K of them per write(), as
// fast as the socket takes them. Nothing waits on a response: a relay that reads and drops at full
// speed shows up as collapsed delivery instead of being hidden by client back-pressure. Receivers
// read as fast as they can and count datagrams, bytes and disconnects. A bystander pair sends one
// timestamped datagram per millisecond through the same relay and measures one-way delay and loss;
// a pinger times GET /ping meanwhile.
//
// Benchmark mode compares the relay with nginx `stream` (plain, `ssl` termination, and TLS on both
// legs like the relay: `ssl` listener + `proxy_ssl` to a TLS sink) carrying the same bytes to a
// sink in this process, and runs overload phases at 4x and 16x the relay's measured peak. It
// prints figures and never fails on them.
//
// --mesh mode compares datagrams/s within one node with node-to-node across the relay mesh.
//
// --check mode is the CI flood test: 4 unlimited senders for 3 s; it fails unless every bystander
// datagram arrives with p99 < 200 ms and no reading receiver is disconnected.
//
// The parts live in loadtest/relay_openloop/: streams (connections, Target), traffic (senders,
// receivers, the sink), phase (one measured phase) and processes (the relay, nginx); this file
// holds main, --check, --mesh and the benchmark with its report.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "relay_harness.hpp"
#include "relay_openloop/phase.hpp"
#include "relay_openloop/processes.hpp"
#include "relay_openloop/streams.hpp"
#include "relay_openloop/traffic.hpp"

namespace relay_openloop {
namespace {

using lt::pin_self;
using lt::pinned;
using lt::pinning;

constexpr const char* kUsage =
    "usage: relay_openloop IROH_RELAY_BINARY [options]\n"
    "  --pairs=N          flooding sender/receiver pairs (default 4)\n"
    "  --seconds=S        measured seconds per phase (default 5)\n"
    "  --warmup-ms=M      unmeasured start of each phase (default 1000)\n"
    "  --k=K              frames per write() (default 16)\n"
    "  --rate=R           pace the single, single-k1 and batch phases at R datagrams/s over all\n"
    "                     senders (default 0: as fast as the sockets take them)\n"
    "  --size=B           datagram size (default 1200)\n"
    "  --batch=B          datagrams per batch frame, type 5 (default 10)\n"
    "  --phases=LIST      comma list of single,single-k1,batch,tls,tls-batch,overload,slow\n"
    "                     (default all of them but slow)\n"
    "  --slow-read-bytes=N  phase slow: one flooded receiver reads N bytes/s (default 8000000)\n"
    "                     and times the relay's Pongs to its Pings (limits.tcp_notsent_lowat)\n"
    "  --nginx=PATH       nginx binary for the baseline (default: nginx from PATH, else skipped)\n"
    "  --nginx-stream-module=PATH  (default /usr/lib/nginx/modules/ngx_stream_module.so)\n"
    "  --relay-cpu=C --gen-cpu=G   pin relay/nginx and this generator (default 0 and 1;\n"
    "                     -1 = no pinning; ignored on a single-CPU machine)\n"
    "  --check            CI flood test: exit 1 unless the bystander and receivers are served\n"
    "  --check-seconds=S  flood length in --check mode (default 3)\n"
    "  --tls              with --check: the flood over HTTPS\n"
    "  --relay-threads=N  the relay's relay_threads (default: the relay's default, one worker\n"
    "                     per CPU it may run on)\n"
    "  --client-queue-bytes=N --tcp-notsent-lowat=N  the relay's limits of these names\n"
    "                     (default: the relay's defaults)\n"
    "  --decrypt-receivers  flood receivers on TLS decrypt what they read (default: they count\n"
    "                     TLS 1.3 records without decrypting, as nginx termination's plain sink\n"
    "                     reads without it; PhaseSpec::count_tls13_records says why)\n"
    "  --rounds=N         run all phases N times (default 1) and print each figure's median\n"
    "  --overload-cycles=N  after the overload phases, N cycles of a paced window at a rate\n"
    "                     the relay sustains and 4x/16x floods right after it (--seconds each);\n"
    "                     prints the median flood/paced ratio (default 8; 0 = skip)\n"
    "  --mesh             only the mesh benchmark (issue 16): two nodes in a mesh, peak\n"
    "                     datagrams/s within node 1 vs node 1 -> node 2; --rounds=N (default 2)\n";

std::string find_in_path(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"}) {
    auto p = std::filesystem::path(dir) / name;
    if (access(p.c_str(), X_OK) == 0) return p.string();
  }
  return {};
}

double ratio(double a, double b) {
  return b > 0 ? a / b : NAN;
}

// ---- --check: the CI flood test ----------------------------------------------------------------

int run_check(const std::string& relay_binary, const lt::Args& args) {
  auto [relay_cpu, gen_cpu] = pinning(args);
  lt::TempDir dir;
  // --tls: the same flood over HTTPS (the relay's TLS reader and its TLS writer under a flood).
  const bool tls = args.has("tls");
  if (tls && !make_cert(dir)) {
    std::cerr << "openssl could not make a certificate\n";
    return 1;
  }
  ClientTls client_tls;
  auto relay_process = start_relay(relay_binary, dir, tls, relay_cpu);
  Target target{"relay", true, tls, relay_process.port, relay_process.child->pid(), &client_tls};
  PhaseSpec spec;
  spec.label = "flood";
  spec.pairs = 4;
  spec.k = 16;
  spec.seconds =
      static_cast<double>(std::clamp<long long>(args.get_int("check-seconds", 3), 1, 30));
  spec.warmup = 0ms;
  spec.relay_cpu_delay = true;
  auto r = run_phase(target, spec, nullptr);
  print_result(tls ? "flood over TLS (4 senders, K=16)" : "flood (4 senders, K=16)", r, true);
  std::vector<std::string> failures;
  if (!r.ran) failures.push_back("could not run: " + r.error);
  if (r.ran) {
    if (r.disconnected) {
      failures.push_back(std::to_string(r.disconnected) +
                         " reading receiver(s) disconnected: " + r.disconnect_reason);
    }
    if (r.by_sent == 0) failures.push_back("the bystander sent nothing");
    if (r.bystander_sender_failed) failures.push_back("the bystander sender was disconnected");
    if (r.by_received < r.by_sent) {
      failures.push_back("bystander lost " + std::to_string(r.by_sent - r.by_received) + " of " +
                         std::to_string(r.by_sent) + " datagrams");
    }
    // The bound is on the relay's CPU time spent while a bystander datagram was in flight, not
    // on wall time: the relay is pinned to one CPU, so that time is at most the wall delay, and
    // on an idle machine (relay at a full core) the two agree; on a machine other work keeps
    // busy (load 10 on 2 cores: the relay runs a few ms out of every 10s of ms) the wall delay
    // is mostly the host's scheduling of the relay and of this generator, which made the wall
    // bound fail on main too. What the test proves stays: a bystander whose datagram waits
    // behind the flood (the relay reading and dropping or writing flood frames while its
    // datagram sits, issue 13's 0.67-5 s) keeps the relay busy for that long and fails.
    if (!(r.by_cpu_p99_ms < 200.0)) {
      failures.push_back("bystander p99 delay in relay CPU time " +
                         std::to_string(r.by_cpu_p99_ms) + " ms (wall p99 " +
                         std::to_string(r.by_p99_ms) + " ms), bound 200 ms");
    }
  }
  if (!relay_process.child->running()) failures.push_back("the relay exited");
  for (auto& f : failures) std::printf("FAIL: %s\n", f.c_str());
  if (!failures.empty()) {
    std::printf("relay log tail:\n%s\n", lt::read_tail(relay_process.log).c_str());
    return 1;
  }
  std::printf("PASS\n");
  return 0;
}

// ---- mesh benchmark (issue 16 item 6, docs/mesh.md) ---------------------------------------------

// Two relay nodes in a mesh, both pinned to --relay-cpu (so the cross-node figure pays for both
// nodes' work on one core, as the same-node figure pays for one node's), the generator on
// --gen-cpu. The same peak search (find_peak) runs with senders and receivers on node 1
// ("same node") and with senders on node 1, receivers on node 2 ("across the mesh"), --rounds
// times alternating, and the ratio of the best figures is printed (target >= 0.5). Figures only.
int run_mesh(const std::string& relay_binary, const lt::Args& args) {
  auto [relay_cpu, gen_cpu] = pinning(args);
  pin_self(gen_cpu);
  PhaseSpec spec;
  spec.pairs = static_cast<std::size_t>(std::clamp<long long>(args.get_int("pairs", 4), 1, 64));
  spec.k = static_cast<std::size_t>(std::clamp<long long>(args.get_int("k", 16), 1, 1024));
  spec.size =
      static_cast<std::size_t>(std::clamp<long long>(args.get_int("size", 1200), 16, 65000));
  const auto rounds = std::clamp<long long>(args.get_int("rounds", 2), 1, 10);

  lt::TempDir dir;
  const auto key_path = dir.path() / "mesh.key";
  {
    std::ofstream key(key_path);
    key << "mesh-benchmark-key-0123456789abcdef0123456789abcdef\n";
  }
  std::filesystem::permissions(
      key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const std::uint16_t port[2] = {lt::free_tcp_port(), lt::free_tcp_port()};
  RelayProcess node[2];
  for (int i = 0; i < 2; ++i) {
    auto sub = dir.path() / ("node" + std::to_string(i + 1));
    std::filesystem::create_directories(sub);
    const std::string extra = "mesh:\n  peers: [\"http://127.0.0.1:" + std::to_string(port[1 - i]) +
                              "\"]\n  psk_file: \"" + key_path.string() + "\"\n" +
                              g_relay_extra_yaml;
    auto config = lt::write_relay_config(sub, port[i], extra);
    node[i].port = port[i];
    node[i].log = sub / "relay.log";
    node[i].child = std::make_unique<lt::ChildProcess>(
        pinned(relay_cpu, {relay_binary, "--config", config.string()}), node[i].log);
  }
  for (int i = 0; i < 2; ++i) {
    if (!lt::wait_for_port(port[i], 10s)) {
      std::cerr << "node " << i + 1 << " did not listen on 127.0.0.1:" << port[i] << "; its log:\n"
                << lt::read_tail(node[i].log) << "\n";
      return 1;
    }
  }
  // The links form within a few backoff steps (100 ms doubling) once both listen; each phase's
  // receivers connect before its senders and the warm-up covers their Present.
  std::this_thread::sleep_for(2s);
  Target t1{"node1", true, false, port[0], node[0].child->pid(), nullptr};
  Target t2{"node2", true, false, port[1], node[1].child->pid(), nullptr};
  std::printf(
      "relay_openloop --mesh: %zu pairs, %zu B datagrams, K=%zu, both nodes on CPU %d, generator "
      "on CPU %d\n",
      spec.pairs, spec.size, spec.k, relay_cpu, gen_cpu);
  std::fflush(stdout);
  double same = 0, cross = 0;
  for (long long round = 0; round < rounds; ++round) {
    spec.label = "same node";
    same = std::max(same, find_peak(t1, spec));
    spec.label = "across the mesh";
    cross = std::max(cross, find_peak(t1, spec, &t2));
  }
  std::printf(
      "mesh benchmark: same node %.0f datagrams/s, across the mesh %.0f datagrams/s, ratio %.2f "
      "(target >= 0.5)\n",
      same, cross, same > 0 ? cross / same : 0.0);
  for (int i = 0; i < 2; ++i) {
    if (!node[i].child->running()) {
      std::printf("node %d exited; its log:\n%s\n", i + 1, lt::read_tail(node[i].log).c_str());
      return 1;
    }
  }
  return same > 0 && cross > 0 ? 0 : 1;
}

// ---- benchmark ---------------------------------------------------------------------------------

// What one round of run_benchmark measured.
struct RoundPhases {
  PhaseResult single, single_nginx, single_k1, single_k1_nginx, batch_relay, batch_nginx,
      tls_single, tls_single_nginx, tls_single_both, tls_batch, tls_batch_nginx, tls_batch_both,
      over4, over16;
  double peak = 0;  // the relay's: the best of the ramp and the single-frame phases
  InterleavedOverload interleaved;
  SlowResult slow;
};

// The figures printed, in the order first printed, with their values over the rounds: --rounds
// ends with each one's median.
class FigureLog {
 public:
  void print(const char* what, double value, const char* target) {
    std::printf("%-56s %8.3f   (target %s)\n", what, value, target);
    auto [it, added] = figures_.try_emplace(what, Figure{target, {}});
    if (added) order_.push_back(what);
    it->second.values.push_back(value);
  }
  void print_medians(int rounds) const {
    std::printf("\n== medians over %d rounds (targets from issue 13)\n", rounds);
    for (const auto& what : order_) {
      const auto& f = figures_.at(what);
      std::vector<double> known;
      std::string each;
      for (double v : f.values) {
        char text[32];
        std::snprintf(text, sizeof text, " %.3f", v);
        each += text;
        if (!std::isnan(v)) known.push_back(v);
      }
      std::printf("%-56s %8.3f   (target %s; rounds:%s)\n", what.c_str(), percentile(known, 0.5),
                  f.target.c_str(), each.c_str());
    }
  }

 private:
  struct Figure {
    std::string target;
    std::vector<double> values;
  };
  std::map<std::string, Figure> figures_;
  std::vector<std::string> order_;
};

// One round's ratios, each with its issue-13 target.
void print_round_ratios(const RoundPhases& rp, FigureLog& figures) {
  auto line = [&](const char* what, double value, const char* target) {
    figures.print(what, value, target);
  };
  if (rp.single.ran)
    line("single K=16 datagrams/s relay/nginx",
         ratio(rp.single.delivered_per_s, rp.single_nginx.delivered_per_s), ">= 0.8");
  if (rp.single_k1.ran)
    line("single K=1 datagrams/s relay/nginx",
         ratio(rp.single_k1.delivered_per_s, rp.single_k1_nginx.delivered_per_s), ">= 0.8");
  if (rp.batch_relay.ran)
    line("batch MB/s relay/nginx", ratio(rp.batch_relay.mb_per_s, rp.batch_nginx.mb_per_s),
         ">= 0.8");
  // Two TLS baselines: nginx terminating TLS to a plain upstream does half the relay's crypto
  // (the relay decrypts from the sender and encrypts again to the receiver); nginx with TLS on
  // both legs does the same crypto as the relay.
  if (rp.tls_single.ran) {
    line("TLS single datagrams/s relay/nginx TLS termination",
         ratio(rp.tls_single.delivered_per_s, rp.tls_single_nginx.delivered_per_s), ">= 0.8");
    line("TLS single datagrams/s relay/nginx TLS both legs",
         ratio(rp.tls_single.delivered_per_s, rp.tls_single_both.delivered_per_s), ">= 0.8");
  }
  if (rp.tls_batch.ran) {
    line("TLS batch MB/s relay/nginx TLS termination",
         ratio(rp.tls_batch.mb_per_s, rp.tls_batch_nginx.mb_per_s), ">= 0.8");
    line("TLS batch MB/s relay/nginx TLS both legs",
         ratio(rp.tls_batch.mb_per_s, rp.tls_batch_both.mb_per_s), ">= 0.8");
  }
  // Not targets: nginx itself doing the relay's crypto (decrypt, then encrypt again) against
  // nginx terminating (decrypt only), in the same run: what any relay could reach against the
  // termination baseline if it were as fast as nginx at everything else.
  if (rp.tls_single_both.ran && rp.tls_single_nginx.ran)
    line("TLS single: nginx both legs/nginx termination",
         ratio(rp.tls_single_both.delivered_per_s, rp.tls_single_nginx.delivered_per_s), "-");
  if (rp.tls_batch_both.ran && rp.tls_batch_nginx.ran)
    line("TLS batch: nginx both legs/nginx termination",
         ratio(rp.tls_batch_both.mb_per_s, rp.tls_batch_nginx.mb_per_s), "-");
  // The same ratios per CPU-second used (delivered per CPU-second, relay over nginx): what the
  // ratio would be if both had a whole core, i.e. the figure to compare across runs on a machine
  // that is not quiet.
  auto per_cpu = [](const PhaseResult& r, bool mb) {
    const double v = mb ? r.mb_per_s : r.delivered_per_s;
    return r.ran && r.cpu_cores > 0 ? v / r.cpu_cores : NAN;
  };
  auto cpu_line = [&](const char* what, const PhaseResult& relay_r, const PhaseResult& nginx_r,
                      bool mb) {
    if (relay_r.ran && nginx_r.ran)
      line(what, ratio(per_cpu(relay_r, mb), per_cpu(nginx_r, mb)), ">= 0.8");
  };
  cpu_line("single K=16 per CPU-second relay/nginx", rp.single, rp.single_nginx, false);
  cpu_line("batch MB per CPU-second relay/nginx", rp.batch_relay, rp.batch_nginx, true);
  cpu_line("TLS single per CPU-second relay/nginx TLS termination", rp.tls_single,
           rp.tls_single_nginx, false);
  cpu_line("TLS single per CPU-second relay/nginx TLS both legs", rp.tls_single, rp.tls_single_both,
           false);
  cpu_line("TLS batch MB per CPU-second relay/nginx TLS termination", rp.tls_batch,
           rp.tls_batch_nginx, true);
  cpu_line("TLS batch MB per CPU-second relay/nginx TLS both legs", rp.tls_batch, rp.tls_batch_both,
           true);
  if (rp.peak > 0) std::printf("%-56s %8.0f datagrams/s\n", "relay peak", rp.peak);
  if (rp.over4.ran)
    line("overload 4x: delivered/peak", ratio(rp.over4.delivered_per_s, rp.peak), ">= 0.9");
  if (rp.over16.ran)
    line("overload 16x: delivered/peak", ratio(rp.over16.delivered_per_s, rp.peak), ">= 0.9");
  if (rp.slow.ran) {
    line("slow receiver: Pong delay p99 ms", percentile(rp.slow.reader.pong_ms, 0.99), "-");
    line("slow receiver: disconnected", rp.slow.disconnected ? 1 : 0, "0");
  }
  if (!rp.interleaved.ratio4.empty()) {
    std::printf("%-56s %zu of %zu cycles counted (paced window sustained)\n",
                "overload interleaved with a paced peak", rp.interleaved.ratio4.size(),
                rp.interleaved.cycles);
    line("overload 4x / paced peak, interleaved (median)", percentile(rp.interleaved.ratio4, 0.5),
         ">= 0.9");
    line("overload 16x / paced peak, interleaved (median)", percentile(rp.interleaved.ratio16, 0.5),
         ">= 0.9");
  }
  auto worst = [&](auto field) {
    double w = 0;
    for (auto* r : {&rp.single, &rp.single_k1, &rp.batch_relay, &rp.over4, &rp.over16,
                    &rp.tls_single, &rp.tls_batch}) {
      if (r->ran && r->by_sent) w = std::max(w, field(*r));
    }
    return w;
  };
  line("bystander p99 one-way ms (worst phase)",
       worst([](const PhaseResult& r) { return r.by_p99_ms; }), "<= 5");
  line("bystander loss % (worst phase)", worst([](const PhaseResult& r) {
         return 100.0 * static_cast<double>(r.by_sent - std::min(r.by_sent, r.by_received)) /
                static_cast<double>(r.by_sent);
       }),
       "<= 1");
  line("receivers disconnected (all phases)",
       worst([](const PhaseResult& r) { return static_cast<double>(r.disconnected); }), "0");
  line("GET /ping p99 ms (worst phase)",
       worst([](const PhaseResult& r) { return percentile(r.ping.ms, 0.99); }), "-");
  // Not a target: how much of the figures above the host took (see each phase's steal line).
  line("host steal % of the relay's CPU (worst phase)",
       worst([](const PhaseResult& r) { return r.steal_relay_pct; }), "-");
  line("host steal % of the generator's CPU (worst phase)",
       worst([](const PhaseResult& r) { return r.steal_gen_pct; }), "-");
}

int run_benchmark(const std::string& relay_binary, const lt::Args& args) {
  auto [relay_cpu, gen_cpu] = pinning(args);

  PhaseSpec base;
  base.relay_cpu = relay_cpu;
  base.gen_cpu = gen_cpu;
  base.pairs = static_cast<std::size_t>(std::clamp<long long>(args.get_int("pairs", 4), 1, 64));
  base.seconds = static_cast<double>(std::clamp<long long>(args.get_int("seconds", 5), 1, 120));
  base.warmup =
      std::chrono::milliseconds(std::clamp<long long>(args.get_int("warmup-ms", 1000), 0, 10000));
  base.k = static_cast<std::size_t>(std::clamp<long long>(args.get_int("k", 16), 1, 1024));
  base.rate_per_s =
      static_cast<double>(std::clamp<long long>(args.get_int("rate", 0), 0, 100000000));
  base.size =
      static_cast<std::size_t>(std::clamp<long long>(args.get_int("size", 1200), 16, 65000));
  auto batch = static_cast<std::size_t>(std::clamp<long long>(args.get_int("batch", 10), 2, 54));
  base.count_tls13_records = !args.has("decrypt-receivers");
  std::string phases =
      "," + args.get("phases", "single,single-k1,batch,tls,tls-batch,overload") + ",";
  auto want = [&](const std::string& p) { return phases.find("," + p + ",") != std::string::npos; };

  lt::TempDir dir;
  if (!make_cert(dir)) {
    std::cerr << "openssl could not make a certificate\n";
    return 1;
  }
  ClientTls tls;
  Sink sink;
  Sink tls_sink(dir.path() / "cert.pem", dir.path() / "key.pem");
  std::string nginx_bin = args.get("nginx", find_in_path("nginx"));
  std::optional<NginxProcess> nginx;
  if (!nginx_bin.empty()) {
    std::string module =
        args.get("nginx-stream-module", "/usr/lib/nginx/modules/ngx_stream_module.so");
    if (!std::filesystem::exists(module)) module.clear();  // stream built in
    nginx = start_nginx(nginx_bin, module, dir, sink.port(), tls_sink.port(), relay_cpu);
  } else {
    std::cout << "nginx not found: no baseline (apt-get install nginx-light libnginx-mod-stream)\n";
  }
  std::printf(
      "relay_openloop: %zu pairs, %zu B datagrams, K=%zu messages per write, %.0f s per phase "
      "(+%lld ms warm-up), relay/nginx on CPU %d, generator on CPU %d\n",
      base.pairs, base.size, base.k, base.seconds, static_cast<long long>(base.warmup.count()),
      relay_cpu, gen_cpu);
  std::fflush(stdout);

  auto relay_phase = [&](Target& t, PhaseSpec s, const std::string& label) {
    s.label = label;
    auto r = run_phase(t, s, nullptr);
    print_result(label, r, true);
    return r;
  };
  // plain, `ssl` termination to the plain sink, or TLS on both legs (`proxy_ssl` to the TLS sink).
  enum class NginxTls { none, termination, both_legs };
  auto nginx_phase = [&](NginxTls mode, PhaseSpec s, const std::string& label) {
    PhaseResult r;
    if (!nginx) return r;
    const auto port = mode == NginxTls::none          ? nginx->plain_port
                      : mode == NginxTls::termination ? nginx->tls_port
                                                      : nginx->tls_both_port;
    Target t{"nginx", false, mode != NginxTls::none, port, nginx->child->pid(), &tls};
    s.label = label;
    s.bystander = s.pinger = false;
    r = run_phase(t, s, mode == NginxTls::both_legs ? &tls_sink : &sink);
    print_result(label, r, false);
    return r;
  };
  auto batch_spec = base;
  batch_spec.batch = batch;
  auto k1_spec = base;
  k1_spec.k = 1;

  // --rounds=N runs every phase N times, relay and nginx alternating as in one round, and ends
  // with each figure's median over the rounds: on a machine whose speed drifts between seconds
  // (other guests, host steal) a ratio of two windows taken close together, repeated, says more
  // than one long window each.
  const int rounds = static_cast<int>(std::clamp<long long>(args.get_int("rounds", 1), 1, 20));
  const int overload_cycles =
      static_cast<int>(std::clamp<long long>(args.get_int("overload-cycles", 8), 0, 100));
  const auto slow_read_bytes = static_cast<double>(
      std::clamp<long long>(args.get_int("slow-read-bytes", 8'000'000), 10'000, 1'000'000'000));
  FigureLog figures;
  for (int round = 1; round <= rounds; ++round) {
    if (rounds > 1) std::printf("\n== round %d of %d\n", round, rounds);
    RoundPhases rp;
    {
      auto relay_process = start_relay(relay_binary, dir, false, relay_cpu);
      Target t{"relay", true, false, relay_process.port, relay_process.child->pid(), &tls};
      if (want("single")) {
        rp.single = relay_phase(t, base, "relay single K=" + std::to_string(base.k));
        rp.single_nginx =
            nginx_phase(NginxTls::none, base, "nginx single K=" + std::to_string(base.k));
      }
      if (want("single-k1")) {
        rp.single_k1 = relay_phase(t, k1_spec, "relay single K=1");
        rp.single_k1_nginx = nginx_phase(NginxTls::none, k1_spec, "nginx single K=1");
      }
      if (want("batch")) {
        rp.batch_relay = relay_phase(t, batch_spec, "relay batch " + std::to_string(batch) + "x");
        rp.batch_nginx =
            nginx_phase(NginxTls::none, batch_spec, "nginx batch " + std::to_string(batch) + "x");
      }
      rp.peak = std::max(rp.single.delivered_per_s, rp.single_k1.delivered_per_s);
      if (want("overload")) {
        rp.peak = std::max(rp.peak, find_peak(t, base));
        std::printf("%-28s %.0f datagrams/s (max of the ramp and the single-frame phases)\n",
                    "relay peak", rp.peak);
      }
      if (want("overload") && rp.peak > 0) {
        auto spec = base;
        spec.rate_per_s = 4 * rp.peak;
        rp.over4 = relay_phase(t, spec, "relay overload 4x peak");
        spec.rate_per_s = 16 * rp.peak;
        rp.over16 = relay_phase(t, spec, "relay overload 16x peak");
        if (overload_cycles > 0)
          rp.interleaved = interleaved_overload(t, base, rp.peak, overload_cycles);
      }
      if (want("slow")) {
        rp.slow = run_slow_phase(t, base, slow_read_bytes);
        print_slow_result(rp.slow, slow_read_bytes);
      }
    }
    if (want("tls") || want("tls-batch")) {
      auto relay_process = start_relay(relay_binary, dir, true, relay_cpu);
      Target t{"relay", true, true, relay_process.port, relay_process.child->pid(), &tls};
      if (want("tls")) {
        rp.tls_single = relay_phase(t, base, "relay TLS single K=" + std::to_string(base.k));
        rp.tls_single_nginx = nginx_phase(NginxTls::termination, base,
                                          "nginx TLS single K=" + std::to_string(base.k));
        rp.tls_single_both = nginx_phase(NginxTls::both_legs, base,
                                         "nginx TLS both legs single K=" + std::to_string(base.k));
      }
      if (want("tls-batch")) {
        rp.tls_batch = relay_phase(t, batch_spec, "relay TLS batch " + std::to_string(batch) + "x");
        rp.tls_batch_nginx = nginx_phase(NginxTls::termination, batch_spec,
                                         "nginx TLS batch " + std::to_string(batch) + "x");
        rp.tls_batch_both = nginx_phase(NginxTls::both_legs, batch_spec,
                                        "nginx TLS both legs batch " + std::to_string(batch) + "x");
      }
    }

    std::printf("\n== ratios (targets from issue 13)%s\n",
                rounds > 1 ? (" of round " + std::to_string(round)).c_str() : "");
    print_round_ratios(rp, figures);
  }
  if (rounds > 1) figures.print_medians(rounds);
  return 0;
}

}  // namespace
}  // namespace relay_openloop

int main(int argc, char** argv) {
  using namespace relay_openloop;
  signal(SIGPIPE, SIG_IGN);
  try {
    lt::Args args(argc, argv, kUsage);
    if (args.positional().size() != 1) {
      std::cerr << kUsage;
      return 2;
    }
    if (args.has("relay-threads")) {
      g_relay_extra_yaml =
          "relay_threads: " + std::to_string(args.get_int("relay-threads", 0)) + "\n";
    }
    std::string limits;
    for (const char* key : {"client-queue-bytes", "tcp-notsent-lowat"}) {
      if (!args.has(key)) continue;
      std::string yaml_key = key;
      std::replace(yaml_key.begin(), yaml_key.end(), '-', '_');
      limits += "  " + yaml_key + ": " + std::to_string(args.get_int(key, 0)) + "\n";
    }
    if (!limits.empty()) g_relay_extra_yaml += "limits:\n" + limits;
    if (args.has("check")) return run_check(args.positional()[0], args);
    if (args.has("mesh")) return run_mesh(args.positional()[0], args);
    return run_benchmark(args.positional()[0], args);
  } catch (const std::exception& e) {
    std::cerr << "relay_openloop: " << e.what() << "\n";
    return 1;
  }
}
