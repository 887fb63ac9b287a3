// How many CPUs this process may run on: its CPU affinity (taskset, cpusets, a container's CPU
// list), else the machine's hardware threads. The default number of threads of the services
// that run one per CPU (relay workers, DNS UDP sockets): threads beyond the CPUs they may use only
// take turns on them, paying a context switch per turn (issue 15 item 7).
#pragma once

#include <sched.h>

#include <algorithm>
#include <thread>

namespace iroh::server {

inline unsigned usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    if (const int n = CPU_COUNT(&set); n > 0) return static_cast<unsigned>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace iroh::server
