#include "relay/tls_socket.hpp"

#include <openssl/err.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/ssl/error.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>

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
  const int fd = static_cast<int>(socket_.native_handle());
  // Reads: the socket BIO (BIO_NOCLOSE: the descriptor stays owned and closed by socket_).
  // Writes: the write buffer in front of that same socket BIO (tls_socket.hpp says why); the
  // socket BIO is in both chains, so it holds two references (SSL_free frees both chains).
  BIO* sock = ec ? nullptr : BIO_new_socket(fd, BIO_NOCLOSE);
  BIO* method_bio = sock && write_buffer_method() ? BIO_new(write_buffer_method()) : nullptr;
  if (!method_bio) {
    BIO_free(sock);
    SSL_free(ssl);
    return;
  }
  wbuf_.fd = fd;
  BIO_set_data(method_bio, &wbuf_);
  BIO_set_init(method_bio, 1);
  BIO_up_ref(sock);
  BIO_push(method_bio, sock);
  SSL_set_bio(ssl, sock, method_bio);
  SSL_set_accept_state(ssl);
  ssl_ = ssl;
}

// The write buffer's BIO method, made once (OpenSSL keeps BIO_METHODs for the process's life).
BIO_METHOD* TlsSocket::write_buffer_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "relay write buffer");
    if (m && (BIO_meth_set_write(m, &TlsSocket::bio_write) != 1 ||
              BIO_meth_set_ctrl(m, &TlsSocket::bio_ctrl) != 1)) {
      BIO_meth_free(m);
      m = nullptr;
    }
    return m;
  }();
  return method;
}

// Sends buffered bytes; true once the buffer is empty. False with errno set (EAGAIN: the socket
// is full) otherwise.
bool TlsSocket::flush_buffer(WriteBuffer& w) {
  while (w.len != 0) {
    const ssize_t n = ::send(w.fd, w.data.get() + w.off, w.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    ++w.sends;
    w.off += std::size_t(n);
    w.len -= std::size_t(n);
  }
  w.off = 0;
  return true;
}

// OpenSSL's write of one record (or a handshake flight's piece): appended to the buffer when it
// fits; otherwise sent together with what is buffered in one sendmsg, and whatever the socket
// did not take is kept (the buffer is never over kWriteBufferBytes). -1 with the retry flag when
// the socket is full and nothing fit (OpenSSL then reports WANT_WRITE and retries the same
// record).
int TlsSocket::bio_write(BIO* b, const char* in, int inl) {
  BIO_clear_retry_flags(b);
  auto& w = *static_cast<WriteBuffer*>(BIO_get_data(b));
  if (inl <= 0) return 0;
  auto size = std::size_t(inl);
  BIO* next = BIO_next(b);
  // Kernel TLS: the socket BIO must see each record itself (it marks non-data records for the
  // kernel), so nothing is buffered; what was buffered before kTLS started went out in the
  // flush OpenSSL does first (bio_ctrl, BIO_CTRL_FLUSH).
  if (next && BIO_get_ktls_send(next)) {
    if (!flush_buffer(w)) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
      return -1;
    }
    const int n = BIO_write(next, in, inl);
    BIO_copy_next_retry(b);
    return n;
  }
  if (!w.data) w.data = std::make_unique<std::uint8_t[]>(kWriteBufferBytes);
  if (w.off + w.len + size > kWriteBufferBytes && w.len + size <= kWriteBufferBytes) {
    std::memmove(w.data.get(), w.data.get() + w.off, w.len);
    w.off = 0;
  }
  if (w.off + w.len + size <= kWriteBufferBytes) {
    std::memcpy(w.data.get() + w.off + w.len, in, size);
    w.len += size;
    return inl;
  }
  // Full: buffered bytes and this record in one sendmsg.
  iovec iov[2] = {{w.data.get() + w.off, w.len}, {const_cast<char*>(in), size}};
  msghdr msg{};
  msg.msg_iov = w.len != 0 ? iov : iov + 1;
  msg.msg_iovlen = w.len != 0 ? 2 : 1;
  ssize_t sent;
  while ((sent = ::sendmsg(w.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR) {
  }
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
    return -1;
  }
  ++w.sends;
  auto n = std::size_t(sent);
  std::size_t taken = 0;
  if (n >= w.len) {
    taken = n - w.len;
    w.off = w.len = 0;
  } else {
    w.off += n;
    w.len -= n;
    std::memmove(w.data.get(), w.data.get() + w.off, w.len);
    w.off = 0;
  }
  // What the socket did not take of the record, as much as fits.
  const std::size_t keep = std::min(size - taken, kWriteBufferBytes - w.len);
  std::memcpy(w.data.get() + w.len, in + taken, keep);
  w.len += keep;
  taken += keep;
  if (taken == 0) {
    BIO_set_retry_write(b);
    return -1;
  }
  return int(taken);
}

long TlsSocket::bio_ctrl(BIO* b, int cmd, long num, void* ptr) {
  auto& w = *static_cast<WriteBuffer*>(BIO_get_data(b));
  BIO* next = BIO_next(b);
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      // OpenSSL flushes after a handshake flight and before kTLS takes over sending.
      BIO_clear_retry_flags(b);
      if (!flush_buffer(w)) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
        return 0;
      }
      return next ? BIO_ctrl(next, cmd, num, ptr) : 1;
    case BIO_CTRL_WPENDING:
      return long(w.len);
    case BIO_CTRL_PENDING:
      return 0;  // reads do not pass through here
    case BIO_CTRL_DUP:
      return 0;  // never duplicated
    default:
      // Everything else (the descriptor, kTLS set-up and queries, EOF) is the socket BIO's.
      return next ? BIO_ctrl(next, cmd, num, ptr) : 0;
  }
}

TlsSocket::Result TlsSocket::flush() {
  if (auto r = unusable()) return *r;
  if (flush_buffer(wbuf_)) return {Status::Done};
  if (errno == EAGAIN || errno == EWOULDBLOCK) return {Status::WantWrite};
  return {Status::Failed, 0, error_code(errno, boost::system::system_category())};
}

void TlsSocket::release_write_buffer() {
  if (wbuf_.len == 0) wbuf_.data.reset();
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
  // Our flight before anything else: the peer waits for it.
  if (wbuf_.len != 0) {
    Result f = flush();
    if (f.status != Status::Done) return f;
  }
  SigpipeGuard guard(guard_sigpipe());
  ERR_clear_error();
  const int ret = SSL_do_handshake(ssl_);
  const int sys_errno = errno;
  // What the step produced (a flight, session tickets) is sent now; a step that is waiting to
  // read first needs its flight on the wire.
  if (wbuf_.len != 0) {
    Result f = flush();
    if (f.status != Status::Done) return f;
  }
  if (ret == 1) return {Status::Done};
  return finish(ret, sys_errno);
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
  std::optional<Result> nothing_read;
  while (total < size) {
    ERR_clear_error();
    std::size_t n = 0;
    const int ret = SSL_read_ex(ssl_, out + total, size - total, &n);
    if (ret == 1) {
      total += n;
      continue;
    }
    Result r = finish(ret, errno);
    if (total == 0) {
      nothing_read = r;
      break;
    }
    // The bytes first; an end or an error is reported by the next call (a wait is simply
    // found again).
    if (r.status == Status::Closed || r.status == Status::Failed) deferred_ = r;
    break;
  }
  // What reading produced (a KeyUpdate answer, an alert) goes out now if the socket takes it;
  // otherwise it stays buffered, in order, for the writer (write_pending()).
  if (wbuf_.len != 0) flush();
  if (nothing_read) return *nothing_read;
  return {Status::Done, total};
}

TlsSocket::Result TlsSocket::write(const void* data, std::size_t size) {
  if (auto r = unusable()) return *r;
  if (size == 0) return {Status::Done};
  SigpipeGuard guard(guard_sigpipe());
  // With SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write_ex returns after each record: loop, so the
  // records of the whole run collect in the write buffer and leave in one sendmsg.
  const auto* in = static_cast<const unsigned char*>(data);
  std::size_t total = 0;
  Result r{Status::Done};
  while (total < size) {
    ERR_clear_error();
    std::size_t n = 0;
    const int ret = SSL_write_ex(ssl_, in + total, size - total, &n);
    if (ret != 1) {
      r = finish(ret, errno);
      break;
    }
    total += n;
  }
  if (wbuf_.len != 0) {
    // A socket that is full now is retried by the caller through flush() (write_pending()).
    Result f = flush();
    if (f.status == Status::Failed && r.status == Status::Done) r = f;
  }
  if (total == 0 || r.status == Status::Failed || r.status == Status::Closed) return r;
  // Bytes taken; a wait that stopped the loop is met again by the retry with the rest.
  return {Status::Done, total};
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
