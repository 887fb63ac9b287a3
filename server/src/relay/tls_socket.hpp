// TLS for relay-service connections, driven directly on the socket (issue 13, "TLS at speed").
//
// Why not Asio's ssl::stream: it passes every byte through a memory BIO pair of at most 17 KiB
// per operation, with a copy in and a copy out, and cannot write a batch of frames as one run
// of records: the relay over TLS delivered 0.29-0.39x nginx with the same OpenSSL. Here the SSL
// object reads and writes the (non-blocking) socket itself through a socket BIO, and waits for
// readiness with the socket's async_wait, so the worker's event loop stays the only loop.
//
// Why the TLS handshake is done here too rather than on ssl::stream with a hand-over: the
// client's first application data (the HTTP request) often arrives in the same flight as its
// Finished, and ssl::stream keeps such bytes in buffers of its own that cannot be handed over.
//
// Two faces:
//  - read()/write()/handshake(): one non-blocking attempt each, for the relay phase's reader and
//    writer (session.cpp, writer.cpp), which loop and wait themselves;
//  - async_read_some/async_write_some/async_handshake: AsyncStream operations for Beast's HTTP
//    parser and serializer and the WebSocket opening handshake (handshake.cpp, mesh_accept.cpp).
// One SSL object serves both the reader and the writer of a connection; they run on the same
// thread and only interleave at their waits, which OpenSSL allows (a write that wanted to be
// retried is retried with the same bytes, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets them move).
//
// Writes go through a bounded write buffer (a filter BIO in front of the socket BIO, issue 13
// "writers gather every pending frame into one writev/sendmsg"): OpenSSL emits one record per
// 16 KiB and, with the socket BIO alone, one write() per record, so a 64 KiB batch cost four
// syscalls. The buffer collects the records of one write() call (at most kWriteBufferBytes)
// and sends them with one sendmsg; a record that does not fit goes out in the same sendmsg as
// what is buffered. Bytes OpenSSL handed to the buffer are only on the wire after flush(): every
// write()/handshake() flushes before it returns and reports what is left (write_pending()).
// Under kernel TLS the kernel makes the records, so writes pass straight to the socket BIO.
#pragma once

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace iroh::server {

class TlsSocket {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using next_layer_type = boost::asio::ip::tcp::socket;
  using error_code = boost::system::error_code;

  // Takes the accepted socket; the SSL object is made from `context` (certificate, ALPN
  // callback for acme-tls/1). Never throws: if OpenSSL cannot set up, every operation fails and
  // the connection ends like any failed handshake.
  TlsSocket(boost::asio::ip::tcp::socket&& socket, boost::asio::ssl::context& context);
  ~TlsSocket();
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  // Beast's get_lowest_layer() follows next_layer().
  next_layer_type& next_layer() { return socket_; }
  SSL* native_handle() { return ssl_; }

  // Outcome of one non-blocking attempt.
  enum class Status {
    Done,       // `bytes` moved (> 0 for read/write), or the handshake completed
    WantRead,   // wait for the socket to be readable, then retry the same call
    WantWrite,  // wait for the socket to be writable, then retry the same call
    Closed,     // the peer sent close_notify (error: eof)
    Failed,     // TLS or socket error (error says which); the connection is over
  };
  struct Result {
    Status status;
    std::size_t bytes = 0;
    error_code error{};
  };

  Result handshake();
  // Reads records until `size` bytes were read or the socket has nothing more: one call takes
  // whatever TLS has decrypted plus what the socket holds, not one record. Done if any byte was
  // read (a pending WantRead is seen on the next call).
  Result read(void* data, std::size_t size);
  // Writes `data` as full-size records and sends them with as few syscalls as the write buffer
  // allows (one per kWriteBufferBytes): Done with the bytes taken, possibly fewer than `size`
  // when the socket filled up; after WantWrite/WantRead, retry with the same remaining bytes.
  // Done does not mean sent: while write_pending(), call flush() (after waiting for the socket
  // to be writable when it says WantWrite).
  Result write(const void* data, std::size_t size);
  // Sends what the write buffer holds: Done once it is empty, WantWrite if the socket is full,
  // Failed on a socket error.
  Result flush();
  // Bytes OpenSSL produced that are not on the socket yet (at most kWriteBufferBytes).
  std::size_t write_pending() const { return wbuf_.len; }
  // Frees the write buffer's storage if it is empty (an idle client holds none).
  void release_write_buffer();
  // Socket writes (send/sendmsg) done by the write buffer so far: what a batch costs in
  // syscalls (tests, benchmarks).
  std::uint64_t socket_writes() const { return wbuf_.sends; }

  // The write buffer's bound: a 64 KiB batch (kMaxBatchBytes in connection.hpp) is four full
  // records of 16 KiB + 22 bytes each, so its last record goes out with the first three in one
  // sendmsg.
  static constexpr std::size_t kWriteBufferBytes = 64 * 1024;

  // After the handshake: whether kernel TLS carries this connection's sends / receives.
  bool ktls_send() const;
  bool ktls_recv() const;

  // AsyncStream. Reads fill the first non-empty buffer of the sequence, like ssl::stream.
  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return start_io<void(error_code, std::size_t)>(Kind::Read, first_buffer(buffers), {},
                                                   std::forward<Token>(token));
  }
  // Writes take up to one record's worth of a sequence of small buffers (Beast's HTTP header
  // pieces) as one copy, so a response is one record and one syscall rather than one per piece.
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    const boost::asio::const_buffer first = first_buffer(buffers);
    std::vector<std::uint8_t> copy;
    if (first.size() < kGatherBytes) {
      copy.resize(std::min(boost::asio::buffer_size(buffers), kGatherBytes));
      boost::asio::buffer_copy(boost::asio::buffer(copy), buffers);
    }
    const boost::asio::mutable_buffer b =
        copy.empty() ? boost::asio::mutable_buffer(const_cast<void*>(first.data()), first.size())
                     : boost::asio::buffer(copy);
    return start_io<void(error_code, std::size_t)>(Kind::Write, b, std::move(copy),
                                                   std::forward<Token>(token));
  }
  // Server side only: the listener's connections accept.
  template <class Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type, Token&& token) {
    return start_io<void(error_code)>(Kind::Handshake, boost::asio::mutable_buffer(), {},
                                      std::forward<Token>(token));
  }

 private:
  enum class Kind { Read, Write, Handshake };
  static constexpr std::size_t kGatherBytes = 16 * 1024;
  Result io(Kind kind, boost::asio::mutable_buffer buffer);
  Result finish(int ret, int sys_errno);
  std::optional<Result> unusable() const;

  template <class Buffers>
  static auto first_buffer(const Buffers& buffers) {
    using Buffer = std::conditional_t<boost::asio::is_mutable_buffer_sequence<Buffers>::value,
                                      boost::asio::mutable_buffer, boost::asio::const_buffer>;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer();
  }

  // One composed operation: attempt, wait for what OpenSSL wants, attempt again. A result that
  // is there at once is delivered through a post, never inside the initiating call.
  template <bool kWithBytes>
  struct IoOp {
    TlsSocket& tls;
    Kind kind;
    boost::asio::mutable_buffer buffer;  // may point into `copy` (heap: stays put on moves)
    std::vector<std::uint8_t> copy;
    Result result{Status::Done};
    std::optional<std::size_t> written{};  // Write: bytes OpenSSL took, waiting for the flush
    bool completing = false;

    template <class Self>
    void operator()(Self& self, error_code wait_error = {}) {
      if (completing) return deliver(self);
      if (wait_error) {
        result = Result{Status::Failed, 0, wait_error};
        return deliver(self);
      }
      // A write whose bytes were taken only waits for the write buffer to empty: the bytes must
      // not be handed to OpenSSL twice.
      result = written ? tls.flush() : tls.io(kind, buffer);
      if (kind == Kind::Write && !written && result.status == Status::Done) {
        written = result.bytes;
        if (tls.write_pending() != 0) {
          const Result flushed = tls.flush();
          if (flushed.status != Status::Done) result = flushed;
        }
      }
      if (written && result.status == Status::Done) result.bytes = *written;
      switch (result.status) {
        case Status::WantRead:
          return tls.socket_.async_wait(boost::asio::socket_base::wait_read, std::move(self));
        case Status::WantWrite:
          return tls.socket_.async_wait(boost::asio::socket_base::wait_write, std::move(self));
        case Status::Done:
        case Status::Closed:
        case Status::Failed:
          break;
      }
      completing = true;
      boost::asio::post(tls.socket_.get_executor(), std::move(self));
    }

    template <class Self>
    void deliver(Self& self) {
      // HTTP and handshake traffic is occasional: an empty write buffer is not kept for it (a
      // connection idle in HTTP keep-alive holds none).
      tls.release_write_buffer();
      if constexpr (kWithBytes) {
        self.complete(result.error, result.bytes);
      } else {
        self.complete(result.error);
      }
    }
  };

  template <class Signature, class Token>
  auto start_io(Kind kind, boost::asio::mutable_buffer buffer, std::vector<std::uint8_t> copy,
                Token&& token) {
    constexpr bool kWithBytes = std::is_same_v<Signature, void(error_code, std::size_t)>;
    return boost::asio::async_compose<Token, Signature>(
        IoOp<kWithBytes>{*this, kind, buffer, std::move(copy)}, token, socket_);
  }

  // The write buffer (tls_socket.cpp: the filter BIO's state). `data` is allocated on first use
  // and freed by release_write_buffer(); bytes [off, off + len) are waiting for the socket.
  struct WriteBuffer {
    int fd = -1;
    std::unique_ptr<std::uint8_t[]> data;
    std::size_t off = 0;
    std::size_t len = 0;
    std::uint64_t sends = 0;
  };
  static BIO_METHOD* write_buffer_method();
  static int bio_write(BIO* b, const char* in, int inl);
  static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);
  static bool flush_buffer(WriteBuffer& w);

  boost::asio::ip::tcp::socket socket_;
  WriteBuffer wbuf_;
  SSL* ssl_ = nullptr;
  // An end or error met by read() after it had read bytes: returned by the next read().
  std::optional<Result> deferred_;
};

// Beast's WebSocket closing handshake (a relay mesh link over TLS, mesh_accept.cpp): found by
// argument-dependent lookup. Like ssl::stream's teardown without close_notify: the TCP
// teardown of the socket underneath (RFC 6455 §7.1.1).
void teardown(boost::beast::role_type role, TlsSocket& stream, boost::system::error_code& ec);

template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, TlsSocket& stream, TeardownHandler&& handler) {
  boost::beast::websocket::async_teardown(role, stream.next_layer(),
                                          std::forward<TeardownHandler>(handler));
}

}  // namespace iroh::server
