#include "http/serve_loop.hpp"

#include <boost/asio/co_spawn.hpp>
#include <exception>
#include <string_view>

#include "core/log.hpp"

namespace iroh::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;

bool is_clean_http_end(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::operation_aborted || ec == http::error::partial_message;
}

namespace http_serve {

bool next_header_buffered(const beast::flat_buffer& buffer) {
  const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
  return data.find("\r\n\r\n") != std::string_view::npos;
}

void append_serialized(std::string& out, HttpResponse& res) {
  http::response_serializer<http::string_body> serializer{res};
  error_code ec;
  while (!ec && !serializer.is_done()) {
    serializer.next(ec, [&](error_code&, const auto& buffers) {
      for (const auto b : beast::buffers_range_ref(buffers)) {
        out.append(static_cast<const char*>(b.data()), b.size());
      }
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
}

std::size_t request_bytes(const HttpRequest& req) {
  std::size_t n = req.target().size() + req.body().size();
  for (const auto& field : req) n += field.name_string().size() + field.value().size() + 4;
  return n;
}

asio::awaitable<bool> collect_pending(PendingAnswers& pending, std::string& held) {
  bool eof = false;
  while (!pending.list.empty()) {
    std::shared_ptr<PendingAnswer> next = pending.list.front();
    pending.list.pop_front();
    while (!next->res) {
      error_code ec;
      co_await next->done.async_wait(ec_token(ec));
    }
    if (eof) continue;
    append_serialized(held, *next->res);
    eof = next->res->need_eof();
  }
  pending.bytes = 0;
  co_return eof;
}

asio::awaitable<HttpResponse> dispatch(const HttpServeHooks& hooks, const HttpRequest& req) {
  HttpResponse res;
  bool failed = false;
  if (const HttpHandler* handler = hooks.router->find(req.method(), target_path(req.target()))) {
    try {
      res = co_await (*handler)(req, hooks.info);
    } catch (const std::exception& e) {
      log::warn("handler for ", req.target(), " failed: ", e.what());
      failed = true;
    }
  } else {
    res = make_response(req, http::status::not_found, "Not Found", hooks.not_found_type);
  }
  if (failed) {
    res = make_response(req, http::status::internal_server_error, "Internal Server Error");
  }
  if (hooks.finish) hooks.finish(res);
  co_return res;
}

void start_handler(std::shared_ptr<const HttpServeHooks> hooks,
                   std::shared_ptr<PendingAnswer> entry) {
  const asio::any_io_executor executor = entry->done.get_executor();
  const HttpServeHooks& routes = *hooks;
  const HttpRequest& req = entry->req;
  // The completion handler holds the hooks (and through them the listener's owner) until the
  // handler finished; dispatch() only errs by throwing outside a handler (e.g. bad_alloc).
  asio::co_spawn(executor, dispatch(routes, req),
                 [hooks = std::move(hooks), entry](std::exception_ptr e, HttpResponse res) {
                   if (e) {
                     res = make_response(entry->req, http::status::internal_server_error,
                                         "Internal Server Error");
                     if (hooks->finish) hooks->finish(res);
                   }
                   entry->res = std::move(res);
                   entry->done.cancel();
                 });
}

HttpResponse refusal(const HttpServeHooks& hooks, const error_code& ec, const HttpRequest& head) {
  HttpResponse res;
  if (ec == http::error::header_limit) {
    // Issue 19: a clear answer instead of a silent close.
    res = HttpResponse{http::status::request_header_fields_too_large, 11};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "Request header fields too large";
    res.prepare_payload();
  } else {
    res = make_response(head, http::status::payload_too_large,
                        "Failed to buffer the request body: length limit exceeded",
                        "text/plain; charset=utf-8");
  }
  res.keep_alive(false);
  if (hooks.finish) hooks.finish(res);
  return res;
}

}  // namespace http_serve
}  // namespace iroh::server
