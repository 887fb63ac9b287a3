// Replies from the address a UDP request was sent to: with IP_PKTINFO / IPV6_RECVPKTINFO set on
// a wildcard-bound socket, recvmsg reports each datagram's destination address, and the matching
// control message on sendmsg makes the reply leave from it (multi-homed hosts, dual-stack
// sockets). Used by the STUN and DNS listeners.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace iroh::server::udp_pktinfo {

// Room for one IPv4 or IPv6 packet-info control message.
inline constexpr std::size_t kPktinfoControlSize = CMSG_SPACE(sizeof(in6_pktinfo)) >
                                                           CMSG_SPACE(sizeof(in_pktinfo))
                                                       ? CMSG_SPACE(sizeof(in6_pktinfo))
                                                       : CMSG_SPACE(sizeof(in_pktinfo));

// Asks the kernel for the destination address of received datagrams (both families on a
// dual-stack socket).
inline void enable_pktinfo(int fd, bool ipv6) {
  const int on = 1;
  if (ipv6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
}

// Writes one control message carrying `value` at `out`; returns the bytes used.
template <class T>
std::size_t write_control(std::uint8_t* out, int level, int type, const T& value) {
  msghdr tmp{};
  tmp.msg_control = out;
  tmp.msg_controllen = CMSG_SPACE(sizeof value);
  cmsghdr* o = CMSG_FIRSTHDR(&tmp);
  o->cmsg_level = level;
  o->cmsg_type = type;
  o->cmsg_len = CMSG_LEN(sizeof value);
  std::memcpy(CMSG_DATA(o), &value, sizeof value);
  return CMSG_SPACE(sizeof value);
}

// Turns the received destination-address control message of `rx` into the one that makes the
// reply leave from that address, written at `out` (kPktinfoControlSize bytes). Returns the
// control length to send (0 = none received).
inline std::size_t reply_control(const msghdr& rx, std::uint8_t* out) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&rx); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&rx), c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      info.ipi_spec_dst = info.ipi_addr;
      info.ipi_ifindex = 0;
      return write_control(out, IPPROTO_IP, IP_PKTINFO, info);
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      return write_control(out, IPPROTO_IPV6, IPV6_PKTINFO, info);
    }
  }
  return 0;
}

}  // namespace iroh::server::udp_pktinfo
