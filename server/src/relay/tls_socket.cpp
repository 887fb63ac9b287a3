#include "relay/tls_socket.hpp"

#include <openssl/err.h>
#include <pthread.h>

#include <boost/asio/ssl/error.hpp>
#include <cerrno>
#include <csignal>

namespace iroh::server {

namespace asio = boost::asio;

namespace {

// With read-ahead, OpenSSL fills its record buffer with one recv of this size instead of two
// recvs per record (5-byte header, then the body): a busy connection reads ~4 records per
// syscall. SSL_MODE_RELEASE_BUFFERS frees the buffer whenever it is empty, so an idle client
// holds none of it (issue 13: RSS per idle client).
constexpr std::size_t kReadAheadBytes = 64 * 1024;

// OpenSSL's socket BIO writes with write(), not send(MSG_NOSIGNAL): a peer that has gone away
// raises SIGPIPE, which kills a process that does not ignore it. The binary ignores it
// (main.cpp); a program embedding the daemon (the integration tests) may not, so there SIGPIPE
// is blocked on this thread around each OpenSSL call that may write, and one raised meanwhile
// is taken off again before the old mask returns.
class SigpipeGuard {
 public:
  explicit SigpipeGuard(bool needed) : active_(needed) {
    if (!active_) return;
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!active_) return;
    const int saved_errno = errno;
    sigset_t pending;
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) == -1 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    errno = saved_errno;
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  bool active_;
  sigset_t pipe_{};
  sigset_t old_{};
};

// Whether the guard is needed, looked up once: the binary ignores SIGPIPE before the daemon
// starts, so it never pays for the guard.
bool guard_sigpipe() {
  static const bool needed = [] {
    struct sigaction current {};
    return !(sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_IGN);
  }();
  return needed;
}

}  // namespace

TlsSocket::TlsSocket(asio::ip::tcp::socket&& socket, asio::ssl::context& context)
    : socket_(std::move(socket)) {
  SSL* ssl = SSL_new(context.native_handle());
  if (!ssl) return;  // out of memory: every operation fails (unusable()), nothing throws
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
  // Kernel TLS (issue 13) when the kernel has the `tls` ULP; OpenSSL silently keeps TLS in user
  // space otherwise, which is all this host offers (tcp_available_ulp lacks `tls`), so the kTLS
  // path is untested here. Read-ahead may keep kTLS off for receiving when records are already
  // buffered at the end of the handshake; sending is unaffected. The counters
  // relayserver_tls_ktls_{send,recv}_total tell what a host actually got.
  // No renegotiation: with it, a write could have to wait for a read.
  SSL_set_options(ssl, SSL_OP_ENABLE_KTLS | SSL_OP_NO_RENEGOTIATION);
  SSL_set_read_ahead(ssl, 1);
  SSL_set_default_read_buffer_len(ssl, kReadAheadBytes);
  boost::system::error_code ec;
  // OpenSSL calls recv/send on the descriptor itself: they must not block the worker.
  socket_.native_non_blocking(true, ec);
  // BIO_NOCLOSE: the descriptor stays owned (and closed) by socket_.
  if (ec || SSL_set_fd(ssl, static_cast<int>(socket_.native_handle())) != 1) {
    SSL_free(ssl);
    return;
  }
  SSL_set_accept_state(ssl);
  ssl_ = ssl;
}

TlsSocket::~TlsSocket() {
  SSL_free(ssl_);
}

bool TlsSocket::ktls_send() const {
  return ssl_ && BIO_get_ktls_send(SSL_get_wbio(ssl_)) != 0;
}
bool TlsSocket::ktls_recv() const {
  return ssl_ && BIO_get_ktls_recv(SSL_get_rbio(ssl_)) != 0;
}

// Why an operation cannot even be tried, if so.
std::optional<TlsSocket::Result> TlsSocket::unusable() const {
  if (!ssl_) return Result{Status::Failed, 0, asio::error::no_memory};
  // Once closed, the descriptor number may already belong to another connection.
  if (!socket_.is_open()) return Result{Status::Failed, 0, asio::error::bad_descriptor};
  return std::nullopt;
}

// `ret` from a failed SSL call, `sys_errno` as it was right after it.
TlsSocket::Result TlsSocket::finish(int ret, int sys_errno) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      return {Status::WantRead};
    case SSL_ERROR_WANT_WRITE:
      return {Status::WantWrite};
    case SSL_ERROR_ZERO_RETURN:
      return {Status::Closed, 0, asio::error::eof};
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0 && sys_errno != 0)
        return {Status::Failed, 0, error_code(sys_errno, boost::system::system_category())};
      // EOF without close_notify (what OpenSSL 1.1 reports this way).
      return {Status::Failed, 0, asio::ssl::error::stream_truncated};
    default: {
      const unsigned long e = ERR_peek_last_error();
      ERR_clear_error();
      // OpenSSL 3: the peer closed TCP without close_notify, maybe in the middle of a record.
      if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        return {Status::Failed, 0, asio::ssl::error::stream_truncated};
      return {Status::Failed, 0, error_code(static_cast<int>(e), asio::error::get_ssl_category())};
    }
  }
}

TlsSocket::Result TlsSocket::handshake() {
  if (auto r = unusable()) return *r;
  SigpipeGuard guard(guard_sigpipe());
  ERR_clear_error();
  const int ret = SSL_do_handshake(ssl_);
  if (ret == 1) return {Status::Done};
  return finish(ret, errno);
}

TlsSocket::Result TlsSocket::read(void* data, std::size_t size) {
  if (auto r = unusable()) return *r;
  if (deferred_) {
    Result r = *deferred_;
    deferred_.reset();
    return r;
  }
  if (size == 0) return {Status::Done};
  // Reading may write too (an alert, a TLS 1.3 KeyUpdate answer).
  SigpipeGuard guard(guard_sigpipe());
  auto* out = static_cast<unsigned char*>(data);
  std::size_t total = 0;
  while (total < size) {
    ERR_clear_error();
    std::size_t n = 0;
    const int ret = SSL_read_ex(ssl_, out + total, size - total, &n);
    if (ret == 1) {
      total += n;
      continue;
    }
    Result r = finish(ret, errno);
    if (total == 0) return r;
    // The bytes first; an end or an error is reported by the next call (a wait is simply
    // found again).
    if (r.status == Status::Closed || r.status == Status::Failed) deferred_ = r;
    break;
  }
  return {Status::Done, total};
}

TlsSocket::Result TlsSocket::write(const void* data, std::size_t size) {
  if (auto r = unusable()) return *r;
  if (size == 0) return {Status::Done};
  SigpipeGuard guard(guard_sigpipe());
  ERR_clear_error();
  std::size_t n = 0;
  const int ret = SSL_write_ex(ssl_, data, size, &n);
  if (ret == 1) return {Status::Done, n};
  return finish(ret, errno);
}

TlsSocket::Result TlsSocket::io(Kind kind, asio::mutable_buffer buffer) {
  switch (kind) {
    case Kind::Read:
      return read(buffer.data(), buffer.size());
    case Kind::Write:
      return write(buffer.data(), buffer.size());
    case Kind::Handshake:
      break;
  }
  return handshake();
}

void teardown(boost::beast::role_type role, TlsSocket& stream, boost::system::error_code& ec) {
  boost::beast::websocket::teardown(role, stream.next_layer(), ec);
}

}  // namespace iroh::server
