// Issue 19 item 2, the measurable bound: "RSS after 800 such attackers stays within 64 MiB of
// before". The iroh-relay binary runs as a child on loopback with its default pre-auth limits;
// from many loopback source addresses (the default cap is 128 unauthenticated connections per IP)
// this test holds 800 relay connections that did the HTTP upgrade and sent part of a handshake
// WebSocket message, sends 100 more that declare a 1 MiB handshake message (closed by the 1 KiB
// cap), and 150 `PUT /pkarr` with large declared, chunked or unfinished bodies. The daemon's
// VmRSS, read from /proc, must stay within 64 MiB of its value before the attack while they are
// held and after they close, a well-behaved pair must still connect and relay meanwhile, and the
// per-IP cap must still apply. Before the fix the 800 took 810 MiB and kept it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "integration/relay_server_test_client.hpp"
#include "iroh/pkarr.hpp"
#include "relay_harness.hpp"

#ifndef IROH_RELAY_BINARY
#error IROH_RELAY_BINARY must name the iroh-relay binary
#endif

namespace iroh::test {
namespace {

namespace lt = iroh::loadtest;
using relay::Bytes;
using relay::SecretKey;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kRssBound = 64 * kMiB;  // issue 19 item 2
constexpr int kHolders = 800;                   // partial handshake message, held
constexpr int kOversized = 100;                 // declared 1 MiB handshake message
constexpr int kPkarr = 150;                     // PUT /pkarr with large bodies
constexpr int kPerIp = 100;                     // below the default cap of 128 per IP
constexpr int kDefaultUnauthPerIp = 128;        // config::Limits::max_unauthenticated_per_ip
constexpr int kOverCap = 8;                     // connections past the cap from one IP

// A blocking TCP socket from `source` (127.x.y.z) to 127.0.0.1:port; -1 on failure. Send and
// receive time out after 5 s so that nothing here can hang.
int connect_from(const std::string& source, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(port);
  remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += std::size_t(n);
  }
  return true;
}

// Reads until the end of an HTTP response head (bounded by the socket's 5 s timeout and 64 KiB);
// returns what was read.
std::string read_head(int fd) {
  std::string got;
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos && got.size() < 65536) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, std::size_t(n));
  }
  return got;
}

// True if the peer has closed `fd` (EOF or reset) within `limit`; data is discarded.
bool closed_within(int fd, std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  char buf[4096];
  while (Clock::now() < deadline) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return true;
    if (n < 0) std::this_thread::sleep_for(10ms);
  }
  return false;
}

// Still open: no EOF or error pending (pending data is discarded).
bool still_open(int fd) {
  char buf[4096];
  for (int i = 0; i < 64; ++i) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

// A masked client WebSocket binary frame header announcing `length` payload bytes (mask key 0, so
// the payload goes as is).
std::string ws_header(std::uint64_t length) {
  std::string h{char(0x82)};
  if (length < 126) {
    h += char(0x80 | length);
  } else if (length <= 0xFFFF) {
    h += char(0x80 | 126);
    h += char(length >> 8);
    h += char(length & 0xFF);
  } else {
    h += char(0x80 | 127);
    for (int i = 7; i >= 0; --i) h += char((length >> (8 * i)) & 0xFF);
  }
  h.append(4, '\0');
  return h;
}

const std::string kUpgrade =
    "GET /relay HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: iroh-relay-v1\r\n\r\n";

std::string ip(int a, int b) {
  return "127.0." + std::to_string(a) + "." + std::to_string(b);
}

struct Fds {
  std::vector<int> fds;
  ~Fds() { close_all(); }
  void close_all() {
    for (int fd : fds) ::close(fd);
    fds.clear();
  }
};

class PreAuthRss : public ::testing::Test {
 protected:
  void SetUp() override {
    // Both sides hold ~1,200 sockets; the child inherits the raised limit.
    ASSERT_GE(lt::raise_nofile_limit(8192), 4096u) << "RLIMIT_NOFILE too low";
    port_ = lt::free_tcp_port();
    // Pre-auth limits at their defaults; a long handshake timeout so that only the rules under
    // test close anything while the attackers are held.
    auto config = lt::write_relay_config(dir_.path(), port_,
                                         "enable_pkarr: true\n"
                                         "limits:\n"
                                         "  handshake_timeout_ms: 120000\n");
    daemon_ = std::make_unique<lt::ChildProcess>(
        std::vector<std::string>{IROH_RELAY_BINARY, "--config", config.string()},
        dir_.path() / "relay.log");
    ASSERT_TRUE(lt::wait_for_port(port_, 15s)) << lt::read_tail(dir_.path() / "relay.log");
    ep_ = tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_);
  }

  std::uint64_t rss() {
    auto v = lt::vm_rss_bytes(daemon_->pid());
    EXPECT_TRUE(v) << "iroh-relay exited: " << lt::read_tail(dir_.path() / "relay.log");
    return v.value_or(0);
  }

  // A well-behaved pair connects, and a datagram goes from one to the other.
  void relay_works(const char* when) {
    SCOPED_TRACE(when);
    auto ka = SecretKey::generate(), kb = SecretKey::generate();
    RelayTestClient a, b;
    ASSERT_FALSE(a.connect(ep_));
    ASSERT_EQ(a.handshake(ka), Bytes{2});
    ASSERT_FALSE(b.connect(ep_));
    ASSERT_EQ(b.handshake(kb), Bytes{2});
    Bytes contents{1, 9, 1, 9};
    ASSERT_TRUE(a.send_datagram(kb.public_key(), contents));
    auto want = relay::encode_server_datagram(ka.public_key(), relay::Ecn::NotEct, 0, contents);
    bool got = false;
    for (int i = 0; i < 8 && !got; ++i) {  // skip frames the relay may send first
      auto m = b.read();
      ASSERT_TRUE(m) << "no datagram";
      got = *m == *want;
    }
    EXPECT_TRUE(got);
  }

  lt::TempDir dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<lt::ChildProcess> daemon_;
  tcp::endpoint ep_;
};

TEST_F(PreAuthRss, EightHundredAttackersStayWithin64MiB) {
  // Warm-up: the first relay connections and a pkarr request allocate what any client would.
  relay_works("before");
  auto warm = http_request(ep_, http::verb::get,
                           "/pkarr/" + pkarr::key_to_z32(SecretKey::generate().public_key()));
  ASSERT_TRUE(warm);
  std::this_thread::sleep_for(500ms);
  const std::uint64_t before = rss();
  std::uint64_t peak = before;
  auto sample = [&] { peak = std::max(peak, rss()); };

  // 800 holders on 127.0.1.1-8: upgrade, then 999 bytes of a 1000-byte handshake message
  // (under the 1 KiB cap, so the relay waits for the rest).
  Fds holders;
  for (int i = 0; i < kHolders; ++i) {
    int fd = connect_from(ip(1, 1 + i / kPerIp), port_);
    ASSERT_GE(fd, 0) << "holder " << i << ": connect: " << std::strerror(errno);
    holders.fds.push_back(fd);
    ASSERT_TRUE(send_all(fd, kUpgrade)) << "holder " << i;
    auto head = read_head(fd);
    ASSERT_TRUE(head.starts_with("HTTP/1.1 101")) << "holder " << i << ": " << head.substr(0, 80);
    ASSERT_TRUE(send_all(fd, ws_header(1000) + std::string(999, 'h'))) << "holder " << i;
    if (i % 100 == 99) sample();
  }

  // 100 on 127.0.4.1-2 announce a 1 MiB handshake message and try to send all but its last byte:
  // what took 1 MiB each before the cap. The relay closes them at the frame header.
  int oversized_closed = 0;
  for (int i = 0; i < kOversized; ++i) {
    int fd = connect_from(ip(4, 1 + i / 50), port_);
    ASSERT_GE(fd, 0) << "oversized " << i;
    ASSERT_TRUE(send_all(fd, kUpgrade));
    ASSERT_TRUE(read_head(fd).starts_with("HTTP/1.1 101")) << "oversized " << i;
    // Fails (reset, or the 5 s send timeout) once the relay has closed the connection.
    send_all(fd, ws_header(kMiB) + std::string(kMiB - 1, 'o'));
    bool closed = closed_within(fd, 10s);
    ::close(fd);
    // One left open means the cap is gone: stop before 100 of them block on full buffers.
    ASSERT_TRUE(closed) << "oversized " << i << ": a 1 MiB handshake message was not refused";
    ++oversized_closed;
    if (i % 25 == 24) sample();
  }
  EXPECT_EQ(oversized_closed, kOversized);

  // 150 PUT /pkarr on 127.0.2.1-2: a declared 2 MiB body (413 from the header), a chunked body
  // whose first chunk announces 1 MiB (413 on overflow), and a declared 1000-byte body left
  // unfinished (held). No body bytes follow the 413 cases: a close with unread input would reset
  // the connection and could discard the 413 before it is read.
  Fds pkarr_fds;
  int got_413 = 0, want_413 = 0;
  for (int i = 0; i < kPkarr; ++i) {
    int fd = connect_from(ip(2, 1 + i / 75), port_);
    ASSERT_GE(fd, 0) << "pkarr " << i;
    pkarr_fds.fds.push_back(fd);
    std::string head = "PUT /pkarr/" + pkarr::key_to_z32(SecretKey::generate().public_key()) +
                       " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkarr.org/"
                       "relays#payload\r\n";
    switch (i % 3) {
      case 0:
        ++want_413;
        ASSERT_TRUE(send_all(fd, head + "Content-Length: 2097152\r\n\r\n"));
        break;
      case 1:
        ++want_413;
        ASSERT_TRUE(send_all(fd, head + "Transfer-Encoding: chunked\r\n\r\n100000\r\n"));
        break;
      default:
        ASSERT_TRUE(send_all(fd, head + "Content-Length: 1000\r\n\r\n" + std::string(600, 'p')));
        continue;
    }
    got_413 += read_head(fd).starts_with("HTTP/1.1 413") ? 1 : 0;
  }
  EXPECT_EQ(got_413, want_413);
  sample();

  // The cap is per IP and still applies: of 136 silent connections from 127.0.3.1, 8 are closed
  // (which 8 depends on the order the listeners accept them in) and 128 stay.
  Fds capped;
  for (int i = 0; i < kDefaultUnauthPerIp + kOverCap; ++i) {
    int fd = connect_from(ip(3, 1), port_);
    ASSERT_GE(fd, 0) << "cap " << i;
    capped.fds.push_back(fd);
  }
  auto count_closed = [&] {
    int n = 0;
    for (int fd : capped.fds) n += still_open(fd) ? 0 : 1;
    return n;
  };
  auto deadline = Clock::now() + 15s;
  while (count_closed() < kOverCap && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(count_closed(), kOverCap);

  // Everything else is held: every holder and every unfinished PUT is still open.
  int holders_open = 0;
  for (int fd : holders.fds) holders_open += still_open(fd) ? 1 : 0;
  EXPECT_EQ(holders_open, kHolders);
  int unfinished_open = 0;
  for (int i = 2; i < kPkarr; i += 3) unfinished_open += still_open(pkarr_fds.fds[i]) ? 1 : 0;
  EXPECT_EQ(unfinished_open, kPkarr / 3);

  // Meanwhile a well-behaved pair still gets in and relays.
  relay_works("while attacked");
  std::this_thread::sleep_for(500ms);
  sample();
  const std::uint64_t held = rss();

  holders.close_all();
  pkarr_fds.close_all();
  capped.close_all();
  // The relay notices the closes at once (EOF); give it time to free what they held.
  std::this_thread::sleep_for(2s);
  relay_works("after");
  const std::uint64_t after = rss();

  std::printf(
      "iroh-relay VmRSS: before %.1f MiB, peak %.1f MiB (+%.1f), held %.1f MiB, after "
      "%.1f MiB (+%.1f); bound +%llu MiB\n",
      double(before) / kMiB, double(peak) / kMiB, (double(peak) - double(before)) / kMiB,
      double(held) / kMiB, double(after) / kMiB, (double(after) - double(before)) / kMiB,
      static_cast<unsigned long long>(kRssBound / kMiB));
  EXPECT_LE(peak, before + kRssBound);
  EXPECT_LE(after, before + kRssBound);
  RecordProperty("rss_before_kib", std::to_string(before / 1024));
  RecordProperty("rss_peak_kib", std::to_string(peak / 1024));
  RecordProperty("rss_after_kib", std::to_string(after / 1024));
}

}  // namespace
}  // namespace iroh::test
