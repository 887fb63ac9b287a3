#include "iroh/server/http_router.hpp"

namespace iroh::server {

void HttpRouter::add(http::verb method, std::string path, HttpHandler handler, Match match,
                     std::size_t max_body, Pipelining pipelining) {
  for (auto& r : routes_) {
    if (r.method == method && r.path == path && r.match == match) {
      r.handler = std::move(handler);
      r.max_body = max_body;
      r.pipelining = pipelining;
      return;
    }
  }
  routes_.push_back(
      Route{method, std::move(path), match, std::move(handler), max_body, pipelining});
}

const HttpRouter::Route* HttpRouter::find_route(http::verb method, std::string_view path) const {
  const Route* best = nullptr;
  for (const auto& r : routes_) {
    if (r.method != method) continue;
    if (r.match == Match::Exact) {
      if (r.path == path) return &r;
    } else if (path.starts_with(r.path) && (!best || r.path.size() > best->path.size())) {
      best = &r;
    }
  }
  return best;
}

const HttpHandler* HttpRouter::find(http::verb method, std::string_view path) const {
  const Route* route = find_route(method, path);
  return route ? &route->handler : nullptr;
}

std::size_t HttpRouter::body_limit(http::verb method, std::string_view path,
                                   std::size_t fallback) const {
  const Route* route = find_route(method, path);
  return route && route->max_body > 0 ? route->max_body : fallback;
}

bool HttpRouter::concurrent(http::verb method, std::string_view path) const {
  const Route* route = find_route(method, path);
  return route && route->pipelining == Pipelining::Concurrent;
}

HttpResponse make_response(const HttpRequest& req, http::status status, std::string body,
                           std::string_view content_type) {
  HttpResponse res{status, req.version()};
  if (!content_type.empty()) res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

std::string_view target_path(std::string_view target) {
  auto end = target.find_first_of("?#");
  return end == std::string_view::npos ? target : target.substr(0, end);
}

std::string percent_decode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(char(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i] == '+' ? ' ' : text[i]);
  }
  return out;
}

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  auto query = target.substr(q + 1);
  if (auto f = query.find('#'); f != std::string_view::npos) query = query.substr(0, f);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq));
    if (key == name) {
      return eq == std::string_view::npos ? std::string{} : percent_decode(pair.substr(eq + 1));
    }
  }
  return std::nullopt;
}

}  // namespace iroh::server
