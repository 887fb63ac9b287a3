// Registering one Prometheus series in one call: the builder chain every metrics struct of the
// daemon (lookup, QAD, STUN, ...) would otherwise spell out again. A family with several label
// values (result="success" / "failure") is built once and its series added by the caller.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>
#include <utility>

namespace iroh::server::metric {

inline prometheus::Counter& counter(prometheus::Registry& registry, const std::string& name,
                                    const std::string& help,
                                    const prometheus::Labels& labels = {}) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add(labels);
}

inline prometheus::Gauge& gauge(prometheus::Registry& registry, const std::string& name,
                                const std::string& help, const prometheus::Labels& labels = {}) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(labels);
}

inline prometheus::Histogram& histogram(prometheus::Registry& registry, const std::string& name,
                                        const std::string& help,
                                        prometheus::Histogram::BucketBoundaries buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add(
      {}, std::move(buckets));
}

}  // namespace iroh::server::metric
